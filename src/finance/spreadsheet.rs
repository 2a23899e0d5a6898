//! Reports as spreadsheets (issue 11, item 5): one model of a sheet — a
//! header block saying what, when and as of, columns, rows and a totals row —
//! written as CSV or XLSX, so both agree with the JSON figure for figure.
//!
//! Amounts are numbers with their currency's precision. In XLSX a number is an
//! IEEE double, exact for every amount below 2^53 minor units (₩9 quadrillion,
//! $90 trillion); the JSON and CSV keep the exact decimal text.

use actix_web::HttpResponse;
use actix_web::http::header::{ContentDisposition, ContentType, DispositionParam, DispositionType};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Deserialize;

use super::FinanceError;
use crate::http::ApiError;
use crate::money::{Currency, format_amount};

/// `?format=`: the JSON body (default) or a download. Anything else is a 422
/// naming `format` and the three values it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Csv,
    Xlsx,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Amount(Decimal, Currency),
    Integer(i64),
    Empty,
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Self {
        Cell::Text(s.into())
    }

    fn csv(&self) -> String {
        match self {
            Cell::Text(s) => csv_field(s),
            Cell::Amount(v, c) => format_amount(*v, *c),
            Cell::Integer(n) => n.to_string(),
            Cell::Empty => String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sheet {
    /// At most 31 characters, none of `[]:*?/\` (Excel's rules).
    pub name: String,
    /// What the report is, and its parameters: `(label, value)` lines above the table.
    pub header: Vec<(String, String)>,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    pub totals: Option<Vec<Cell>>,
}

/// A sheet name Excel accepts.
pub fn sheet_name(raw: &str) -> String {
    let cleaned: String = raw.chars().map(|c| if "[]:*?/\\".contains(c) { '-' } else { c }).collect();
    cleaned.chars().take(31).collect()
}

/// A text field of any CSV the service writes (reports, the funding report,
/// the journal export): quoted when it must be, and never read as a formula by
/// a spreadsheet — names, memos and references are chosen by users, so a
/// leading `=`, `+`, `-`, `@`, tab or carriage return is escaped with `'`.
pub fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_string() };
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

/// The header block every sheet starts with: what the report is, when it was
/// generated and as of when (the generation instant when the report has no
/// `as_of`), then the report's own parameters.
pub fn header_block(
    report: &str,
    generated_at: DateTime<Utc>,
    as_of: Option<DateTime<Utc>>,
    parameters: Vec<(&str, String)>,
) -> Vec<(String, String)> {
    let mut header = vec![
        ("report".to_string(), report.to_string()),
        ("generated at".to_string(), generated_at.to_rfc3339()),
        ("as of".to_string(), as_of.unwrap_or(generated_at).to_rfc3339()),
    ];
    header.extend(parameters.into_iter().map(|(k, v)| (k.to_string(), v)));
    header
}

/// The sum of amounts a JSON view formatted, for a totals row (exact, checked).
pub fn sum_amounts<'a>(amounts: impl IntoIterator<Item = &'a str>) -> Result<Decimal, FinanceError> {
    amounts.into_iter().try_fold(Decimal::ZERO, |sum, text| {
        let amount: Decimal = text.parse().map_err(|_| FinanceError::NotAnAmount(text.to_string()))?;
        sum.checked_add(amount).ok_or(FinanceError::TotalOverflow)
    })
}

/// The JSON body by default, the sheets as a download for `csv` and `xlsx`.
/// The sheets are built only when asked for.
pub fn respond<T: serde::Serialize>(
    format: Option<Format>,
    body: &T,
    stem: &str,
    sheets: impl FnOnce() -> Result<Vec<Sheet>, ApiError>,
) -> Result<HttpResponse, ApiError> {
    match format.unwrap_or(Format::Json) {
        Format::Json => Ok(HttpResponse::Ok().json(body)),
        format => download(format, stem, &sheets()?),
    }
}

/// A plain CSV table, the column row then the rows, with no header block: the
/// layout of the journal export (`GET /v1/exports/journal?format=csv`), which
/// tools import as one table.
pub fn csv_table(columns: &[&str], rows: impl IntoIterator<Item = Vec<Cell>>) -> String {
    let mut out = columns.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",") + "\n";
    for row in rows {
        out.push_str(&(row.iter().map(Cell::csv).collect::<Vec<_>>().join(",") + "\n"));
    }
    out
}

/// CSV: for each sheet, its header block (`label,value`), a blank line, the
/// column row, the rows and the totals row; sheets one after another.
pub fn to_csv(sheets: &[Sheet]) -> String {
    let mut out = String::new();
    for (i, sheet) in sheets.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("sheet,{}\n", csv_field(&sheet.name)));
        for (label, value) in &sheet.header {
            out.push_str(&format!("{},{}\n", csv_field(label), csv_field(value)));
        }
        out.push('\n');
        let line = |cells: Vec<String>| cells.join(",") + "\n";
        out.push_str(&line(sheet.columns.iter().map(|c| csv_field(c)).collect()));
        for row in &sheet.rows {
            out.push_str(&line(row.iter().map(Cell::csv).collect()));
        }
        if let Some(totals) = &sheet.totals {
            out.push_str(&line(totals.iter().map(Cell::csv).collect()));
        }
    }
    out
}

fn number_format(currency: Currency) -> &'static str {
    match currency.minor_units() {
        0 => "#,##0",
        1 => "#,##0.0",
        2 => "#,##0.00",
        _ => "#,##0.000",
    }
}

/// XLSX: one worksheet per sheet, the header block in the first rows, the
/// table below it with bold column names and a bold totals row.
pub fn to_xlsx(sheets: &[Sheet]) -> Result<Vec<u8>, FinanceError> {
    use rust_xlsxwriter::{Format as XFormat, Workbook};
    let mut book = Workbook::new();
    let bold = XFormat::new().set_bold();
    for sheet in sheets {
        let ws = book.add_worksheet();
        ws.set_name(sheet_name(&sheet.name))?;
        let mut r: u32 = 0;
        for (label, value) in &sheet.header {
            ws.write_string_with_format(r, 0, label, &bold)?;
            ws.write_string(r, 1, value)?;
            r += 1;
        }
        r += 1;
        for (c, name) in sheet.columns.iter().enumerate() {
            ws.write_string_with_format(r, c as u16, name, &bold)?;
        }
        r += 1;
        let write_row = |ws: &mut rust_xlsxwriter::Worksheet, r: u32, cells: &[Cell], total: bool| {
            for (c, cell) in cells.iter().enumerate() {
                let col = c as u16;
                let result = match cell {
                    Cell::Text(s) if total => ws.write_string_with_format(r, col, s, &bold).map(|_| ()),
                    Cell::Text(s) => ws.write_string(r, col, s).map(|_| ()),
                    Cell::Amount(v, currency) => {
                        let mut f = XFormat::new().set_num_format(number_format(*currency));
                        if total {
                            f = f.set_bold();
                        }
                        // Rounded to the currency's precision first: the cell shows exactly the JSON figure.
                        let value = v.round_dp(currency.minor_units()).to_f64().unwrap_or(f64::NAN);
                        ws.write_number_with_format(r, col, value, &f).map(|_| ())
                    }
                    Cell::Integer(n) => ws.write_number(r, col, *n as f64).map(|_| ()),
                    Cell::Empty => Ok(()),
                };
                result?;
            }
            Ok::<(), rust_xlsxwriter::XlsxError>(())
        };
        for row in &sheet.rows {
            write_row(ws, r, row, false)?;
            r += 1;
        }
        if let Some(totals) = &sheet.totals {
            write_row(ws, r, totals, true)?;
        }
        ws.autofit();
    }
    Ok(book.save_to_buffer()?)
}

/// The download response for `format` (CSV or XLSX), named `stem.csv|xlsx`.
pub fn download(format: Format, stem: &str, sheets: &[Sheet]) -> Result<HttpResponse, ApiError> {
    let (body, content_type, name) = match format {
        Format::Csv | Format::Json => {
            (to_csv(sheets).into_bytes(), ContentType(mime::TEXT_CSV_UTF_8), format!("{stem}.csv"))
        }
        Format::Xlsx => (
            to_xlsx(sheets)?,
            ContentType(
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                    .parse()
                    .unwrap_or(mime::APPLICATION_OCTET_STREAM),
            ),
            format!("{stem}.xlsx"),
        ),
    };
    Ok(HttpResponse::Ok()
        .insert_header(content_type)
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(name)],
        })
        .body(body))
}

/// A cell from an amount the JSON view already formatted.
pub fn amount_cell(formatted: &str, currency: Currency) -> Cell {
    formatted.parse::<Decimal>().map_or_else(|_| Cell::text(formatted), |v| Cell::Amount(v, currency))
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{Data, Reader, Xlsx};
    use rust_decimal_macros::dec;

    fn sheet() -> Sheet {
        Sheet {
            name: "Settlement: 2026/11".into(),
            header: vec![("report".into(), "test".into()), ("as of".into(), "2026-12-01T00:00:00Z".into())],
            columns: vec!["tenant".into(), "spent".into(), "orders".into()],
            rows: vec![
                vec![Cell::text("ACME, Inc."), Cell::Amount(dec!(1234567), Currency::Krw), Cell::Integer(3)],
                vec![Cell::text("Beta"), Cell::Amount(dec!(8000.0000), Currency::Krw), Cell::Empty],
            ],
            totals: Some(vec![Cell::text("total"), Cell::Amount(dec!(1242567), Currency::Krw), Cell::Integer(3)]),
        }
    }

    #[test]
    fn csv_has_the_header_block_the_table_and_the_totals() {
        assert_eq!(
            to_csv(&[sheet()]),
            "sheet,Settlement: 2026/11\nreport,test\nas of,2026-12-01T00:00:00Z\n\ntenant,spent,orders\n\
             \"ACME, Inc.\",1234567,3\nBeta,8000,\ntotal,1242567,3\n"
        );
    }

    #[test]
    fn xlsx_reads_back_figure_for_figure() {
        let bytes = to_xlsx(&[sheet()]).expect("xlsx");
        let mut book: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).expect("open");
        assert_eq!(book.sheet_names(), vec!["Settlement- 2026-11".to_string()]);
        let range = book.worksheet_range("Settlement- 2026-11").expect("sheet");
        assert_eq!(range.get_value((0, 1)), Some(&Data::String("test".into())));
        assert_eq!(range.get_value((3, 1)), Some(&Data::String("spent".into())));
        assert_eq!(range.get_value((4, 0)), Some(&Data::String("ACME, Inc.".into())));
        assert_eq!(range.get_value((4, 1)), Some(&Data::Float(1234567.0)));
        assert_eq!(range.get_value((6, 1)), Some(&Data::Float(1242567.0)));
    }

    #[test]
    fn sheet_names_follow_excel_rules() {
        assert_eq!(sheet_name("a/b:c"), "a-b-c");
        assert_eq!(sheet_name(&"x".repeat(40)).len(), 31);
    }
}
