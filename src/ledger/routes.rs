//! Finance's routes over the ledger: accounts, statements, the trial balance,
//! verification, manual adjustments and reversals. Finance and admin only.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::model::{AccountType, EntryKind};
use super::posting::{self, NewEntry};
use super::queries::{self, AccountFilter, StatementLine};
use super::rules::Movement;
use super::store::{self, AccountRow, EntryRow, PostingRow};
use super::verify::VerifyReport;
pub use super::views::AccountView;
use crate::auth::Principal;
use crate::finance::spreadsheet::{self, Cell, Format, Sheet, amount_cell};
use crate::http::extract::{JsonBody, NoQuery, Query};
use crate::http::pagination::{self, Page, decode_cursor};
use crate::http::{ApiError, FieldError, Write};
use crate::money::{Currency, Money, format_amount, parse_amount};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AccountListQuery {
    /// Only accounts whose code starts with this (`liabilities:tenant:`).
    pub code: Option<String>,
    pub currency: Option<Currency>,
    pub org_id: Option<Uuid>,
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub account_type: Option<AccountType>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Lists accounts, ordered by code and currency. Roles: finance and admin see
/// every account; tenants and providers their own organisation's.
#[utoipa::path(tag = "ledger", params(AccountListQuery), security(("bearer" = [])), responses(
    (status = 200, description = "A page of accounts", body = inline(Page<AccountView>)),
    (status = 401, body = crate::http::problem::Problem), (status = 403, body = crate::http::problem::Problem),
))]
#[get("/v1/accounts")]
pub async fn list_accounts(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<AccountListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = pagination::limit(q.limit)?;
    let after = q.cursor.as_deref().map(decode_cursor::<(String, String)>).transpose()?;
    // Tenants and providers see their own organisation's accounts only.
    let org_id = if principal.is_finance() {
        q.org_id
    } else if q.org_id.is_none_or(|org| org == principal.org_id) {
        Some(principal.org_id)
    } else {
        return Ok(HttpResponse::Ok().json(Page::<AccountView> { data: vec![], next_cursor: None }));
    };
    let filter = AccountFilter {
        code_prefix: q.code,
        currency: q.currency.map(|c| c.code().to_string()),
        org_id,
        account_type: q.account_type.map(|t| t.as_str().to_string()),
    };
    let mut conn = state.pool.get().await?;
    let rows = queries::list_accounts(&mut conn, &filter, after, limit + 1).await?;
    Ok(HttpResponse::Ok().json(pagination::page(
        rows,
        limit,
        |r| (r.code.clone(), r.currency.to_string()),
        AccountView::from,
    )))
}

/// An account the caller may see: finance sees all; anyone else only their own
/// organisation's, and another's answers 404 as if it did not exist.
async fn find_account(state: &AppState, principal: &Principal, id: Uuid) -> Result<AccountRow, ApiError> {
    let mut conn = state.pool.get().await?;
    visible_account(&mut conn, principal, id).await
}

/// The account `id` if `principal` may see it (see [`find_account`]).
pub(crate) async fn visible_account(
    conn: &mut diesel_async::AsyncPgConnection,
    principal: &Principal,
    id: Uuid,
) -> Result<AccountRow, ApiError> {
    store::account_by_id(conn, id)
        .await?
        .filter(|a| principal.is_finance() || a.org_id == Some(principal.org_id))
        .ok_or_else(|| ApiError::missing("account", id))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AccountQuery {
    /// An RFC 3339 instant: the figures as of it, counting the postings
    /// effective *before* it (half-open, like every report). Now when absent.
    pub as_of: Option<DateTime<Utc>>,
}

/// One account and its figures, now or as of an instant. Roles: finance,
/// admin; tenants and providers for their own organisation's accounts
/// (another's answers 404).
#[utoipa::path(tag = "ledger", params(("id" = Uuid, Path), AccountQuery), security(("bearer" = [])), responses(
    (status = 200, body = AccountView), (status = 404, body = crate::http::problem::Problem),
    (status = 422, description = "An unknown or malformed query parameter", body = crate::http::problem::Problem),
))]
#[get("/v1/accounts/{id}")]
pub async fn get_account(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    Query(q): Query<AccountQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut account = find_account(&state, &principal, *id).await?;
    if let Some(as_of) = q.as_of {
        let mut conn = state.pool.get().await?;
        let b = queries::account_figures_before(&mut conn, account.id, as_of).await?;
        account.debits_posted = b.debits_posted;
        account.credits_posted = b.credits_posted;
        account.debits_pending = b.debits_pending;
        account.credits_pending = b.credits_pending;
    }
    Ok(HttpResponse::Ok().json(AccountView::from(account)))
}

/// A line of an account statement.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatementLineView {
    pub posting_id: Uuid,
    pub entry_id: Uuid,
    pub entry_kind: String,
    pub effective_at: DateTime<Utc>,
    pub memo: String,
    /// `posted`, `pending`, `post_pending` or `void_pending`.
    pub kind: String,
    pub pending_posting_id: Option<Uuid>,
    /// Whether this account is debited or credited.
    pub side: String,
    pub counter_account_id: Uuid,
    pub counter_account_code: String,
    pub amount: String,
    /// The account's posted balance right after this line.
    pub balance: String,
}

fn statement_view(line: StatementLine, currency: Currency) -> StatementLineView {
    StatementLineView {
        posting_id: line.posting_id,
        entry_id: line.entry_id,
        entry_kind: line.entry_kind,
        effective_at: line.effective_at,
        memo: line.memo,
        kind: line.kind,
        pending_posting_id: line.pending_posting_id,
        side: line.side,
        counter_account_id: line.counter_account_id,
        counter_account_code: line.counter_account_code,
        amount: format_amount(line.amount, currency),
        balance: format_amount(line.balance, currency),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// `json` (default), `csv` or `xlsx`: the page as a sheet.
    #[param(value_type = Option<String>)]
    pub format: Option<Format>,
}

/// An account's statement: its postings, oldest first, with the running posted
/// balance. Roles: as for the account.
#[utoipa::path(tag = "ledger", params(("id" = Uuid, Path), PageQuery), security(("bearer" = [])), responses(
    (status = 200, body = inline(Page<StatementLineView>),
        description = "JSON, or with `format=csv|xlsx` the page as a download named `account-{id}.csv|xlsx`"),
    (status = 404, body = crate::http::problem::Problem), (status = 422, body = crate::http::problem::Problem),
))]
#[get("/v1/accounts/{id}/postings")]
pub async fn account_postings(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    Query(q): Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let account = find_account(&state, &principal, *id).await?;
    let mut conn = state.pool.get().await?;
    let page = account_postings_page(&mut conn, &account, q.limit, q.cursor.as_deref()).await?;
    let now = state.clock.now(&mut conn).await?;
    spreadsheet::respond(q.format, &page, &format!("account-{}", account.id), || {
        account_statement_sheet(&account, &page.data, now)
    })
}

/// A page of an account's postings with the running balance
/// (`GET /v1/accounts/{id}/postings`), for the API and the console.
pub(crate) async fn account_postings_page(
    conn: &mut diesel_async::AsyncPgConnection,
    account: &AccountRow,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<Page<StatementLineView>, ApiError> {
    let limit = pagination::limit(limit)?;
    let after: i64 = cursor.map(decode_cursor).transpose()?.unwrap_or(0);
    let lines = queries::statement(conn, account.id, after, limit + 1).await?;
    Ok(pagination::page(lines, limit, |l| l.seq, |l| statement_view(l, account.currency)))
}

/// An account statement page as one sheet: debits and credits apart, the
/// running posted balance, and a totals row with the page's debits, credits
/// and last balance.
fn account_statement_sheet(
    account: &AccountRow,
    lines: &[StatementLineView],
    now: DateTime<Utc>,
) -> Result<Vec<Sheet>, ApiError> {
    let c = account.currency;
    let side =
        |want: &str| spreadsheet::sum_amounts(lines.iter().filter(|l| l.side == want).map(|l| l.amount.as_str()));
    let (debits, credits) = (side("debit")?, side("credit")?);
    let rows = lines
        .iter()
        .map(|l| {
            let (debit, credit) = if l.side == "debit" {
                (amount_cell(&l.amount, c), Cell::Empty)
            } else {
                (Cell::Empty, amount_cell(&l.amount, c))
            };
            vec![
                Cell::text(l.effective_at.to_rfc3339()),
                Cell::text(l.entry_id.to_string()),
                Cell::text(&l.entry_kind),
                Cell::text(&l.kind),
                Cell::text(&l.counter_account_code),
                Cell::text(&l.memo),
                debit,
                credit,
                amount_cell(&l.balance, c),
            ]
        })
        .collect();
    Ok(vec![Sheet {
        name: "Account statement".into(),
        header: spreadsheet::header_block(
            "account statement (one page)",
            now,
            None,
            vec![("account", format!("{} ({})", account.code, account.id)), ("currency", c.code().into())],
        ),
        columns: [
            "effective_at",
            "entry",
            "entry_kind",
            "posting",
            "counter_account",
            "memo",
            "debit",
            "credit",
            "balance",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        totals: Some(vec![
            Cell::text("total"),
            Cell::Empty,
            Cell::Empty,
            Cell::Empty,
            Cell::Empty,
            Cell::Empty,
            Cell::Amount(debits, c),
            Cell::Amount(credits, c),
            lines.last().map_or(Cell::Empty, |l| amount_cell(&l.balance, c)),
        ]),
    }])
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TrialBalanceQuery {
    /// An RFC 3339 instant; now when absent.
    pub as_of: Option<DateTime<Utc>>,
    /// `json` (default), `csv` or `xlsx`: per currency, a sheet of money accounts and one of memo accounts.
    #[param(value_type = Option<String>)]
    pub format: Option<Format>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CurrencyTotals {
    pub currency: String,
    pub debits_posted: String,
    pub credits_posted: String,
    pub debits_pending: String,
    pub credits_pending: String,
}

/// An account of the trial balance, with its organisation by name.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TrialBalanceRow {
    #[serde(flatten)]
    pub account: AccountView,
    /// The organisation of a tenant's wallet or a provider's payable; null otherwise.
    pub org: Option<crate::finance::names::OrgRef>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TrialBalance {
    pub as_of: DateTime<Utc>,
    pub data: Vec<TrialBalanceRow>,
    /// Per currency, the money accounts (assets, liabilities, equity, revenue,
    /// expenses): what the operator holds and owes.
    pub totals: Vec<CurrencyTotals>,
    /// Per currency, the `budget:` memo accounts (public money promised, not
    /// held), which balance among themselves and are kept out of `totals`.
    pub memo_totals: Vec<CurrencyTotals>,
}

/// Sums the four figures per currency of the rows `include` selects.
fn totals_of(rows: &[AccountRow], include: impl Fn(&AccountRow) -> bool) -> Result<Vec<CurrencyTotals>, ApiError> {
    // Keyed by code: the totals come in the order of the currencies' codes.
    let mut totals: BTreeMap<&str, [Money; 4]> = BTreeMap::new();
    for row in rows.iter().filter(|r| include(r)) {
        let b = row.balances();
        let sums = totals.entry(row.currency.code()).or_insert([Money::zero(row.currency); 4]);
        for (sum, figure) in
            sums.iter_mut().zip([b.debits_posted, b.credits_posted, b.debits_pending, b.credits_pending])
        {
            *sum = sum.checked_add(Money::new(figure, row.currency)).map_err(super::LedgerError::from)?;
        }
    }
    Ok(totals
        .into_values()
        .map(|[debits_posted, credits_posted, debits_pending, credits_pending]| CurrencyTotals {
            currency: debits_posted.currency.to_string(),
            debits_posted: debits_posted.formatted_amount(),
            credits_posted: credits_posted.formatted_amount(),
            debits_pending: debits_pending.formatted_amount(),
            credits_pending: credits_pending.formatted_amount(),
        })
        .collect())
}

/// Every account's figures as of an instant, and totals per currency: money
/// accounts in `totals`, `budget:` memo accounts apart in `memo_totals`.
/// Roles: finance, admin.
#[utoipa::path(tag = "reports", params(TrialBalanceQuery), security(("bearer" = [])), responses(
    (status = 200, body = TrialBalance,
        description = "JSON, or with `format=csv|xlsx` a download named `trial-balance.csv|xlsx`"),
    (status = 422, body = crate::http::problem::Problem),
))]
#[get("/v1/reports/trial-balance")]
pub async fn trial_balance(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<TrialBalanceQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let mut conn = state.pool.get().await?;
    let now = state.clock.now(&mut conn).await?;
    let report = trial_balance_report(&mut conn, q.as_of, now).await?;
    spreadsheet::respond(q.format, &report, "trial-balance", || trial_balance_sheets(&report, now))
}

/// The trial balance as of `as_of` (now when `None`): every account and the
/// totals per currency (`GET /v1/reports/trial-balance`), for the API and the console.
pub(crate) async fn trial_balance_report(
    conn: &mut diesel_async::AsyncPgConnection,
    as_of: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<TrialBalance, ApiError> {
    let rows = queries::trial_balance(conn, as_of).await?;
    let is_memo = |r: &AccountRow| r.account_type == AccountType::Memo;
    let totals = totals_of(&rows, |r| !is_memo(r))?;
    let memo_totals = totals_of(&rows, is_memo)?;
    let org_ids: Vec<Uuid> =
        rows.iter().filter_map(|r| r.org_id).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let orgs = crate::finance::names::orgs(conn, &org_ids).await?;
    let data = rows
        .into_iter()
        .map(|r| {
            let org = r.org_id.and_then(|id| orgs.get(&id)).cloned();
            TrialBalanceRow { account: AccountView::from(r), org }
        })
        .collect();
    Ok(TrialBalance { as_of: as_of.unwrap_or(now), data, totals, memo_totals })
}

/// Per currency: the money accounts with the `totals` row, then the `budget:`
/// memo accounts with the `memo_totals` row.
fn trial_balance_sheets(tb: &TrialBalance, now: DateTime<Utc>) -> Result<Vec<Sheet>, ApiError> {
    let mut sheets = Vec::new();
    let parts = [("Trial balance", false, &tb.totals), ("Budget memo", true, &tb.memo_totals)];
    for currency in Currency::ALL {
        for (title, memo, totals) in parts {
            let Some(total) = totals.iter().find(|t| t.currency == currency.code()) else { continue };
            let rows: Vec<Vec<Cell>> = tb
                .data
                .iter()
                .filter(|r| r.account.currency == currency.code())
                .filter(|r| (r.account.account_type == AccountType::Memo.as_str()) == memo)
                .map(|r| {
                    let a = &r.account;
                    vec![
                        Cell::text(&a.code),
                        Cell::text(r.org.as_ref().map(|o| o.name.clone()).unwrap_or_default()),
                        Cell::text(&a.account_type),
                        amount_cell(&a.debits_posted, currency),
                        amount_cell(&a.credits_posted, currency),
                        amount_cell(&a.debits_pending, currency),
                        amount_cell(&a.credits_pending, currency),
                        amount_cell(&a.balance, currency),
                    ]
                })
                .collect();
            if rows.is_empty() {
                continue;
            }
            sheets.push(Sheet {
                name: spreadsheet::sheet_name(&format!("{title} {}", currency.code())),
                header: spreadsheet::header_block(
                    if memo { "trial balance: budget memo accounts" } else { "trial balance" },
                    now,
                    Some(tb.as_of),
                    vec![("currency", currency.code().into())],
                ),
                columns: [
                    "account",
                    "organisation",
                    "type",
                    "debits_posted",
                    "credits_posted",
                    "debits_pending",
                    "credits_pending",
                    "balance",
                ]
                .map(String::from)
                .to_vec(),
                rows,
                totals: Some(vec![
                    Cell::text("total"),
                    Cell::Empty,
                    Cell::Empty,
                    amount_cell(&total.debits_posted, currency),
                    amount_cell(&total.credits_posted, currency),
                    amount_cell(&total.debits_pending, currency),
                    amount_cell(&total.credits_pending, currency),
                    Cell::Empty,
                ]),
            });
        }
    }
    Ok(sheets)
}

/// Recomputes the ledger's invariants from the postings. Roles: finance, admin.
#[utoipa::path(tag = "ledger", security(("bearer" = [])), responses((status = 200, body = VerifyReport)))]
#[get("/v1/ledger/verify")]
pub async fn verify_ledger(
    state: web::Data<AppState>,
    principal: Principal,
    _: NoQuery,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(crate::verify::verify(&mut conn).await?))
}

/// One posting of a manual adjustment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentPosting {
    /// The debited account: its id, or its code.
    pub debit_account: String,
    /// The credited account: its id, or its code.
    pub credit_account: String,
    /// A decimal string in the entry's currency.
    pub amount: String,
}

/// A manual adjustment by finance (SPEC section 6).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdjustment {
    /// Why the adjustment is made: required.
    pub memo: String,
    pub currency: Currency,
    pub reference: Option<String>,
    /// When the correction takes effect: now when absent; never in the future,
    /// and never in a closed period (409 `period_closed`).
    pub effective_at: Option<DateTime<Utc>>,
    pub postings: Vec<AdjustmentPosting>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PostingView {
    pub id: Uuid,
    pub kind: String,
    pub debit_account_id: Uuid,
    /// The debited account's code and type, so an entry reads without a lookup.
    pub debit_account_code: String,
    pub debit_account_type: String,
    pub credit_account_id: Uuid,
    pub credit_account_code: String,
    pub credit_account_type: String,
    pub amount: String,
    pub currency: String,
    pub pending_posting_id: Option<Uuid>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntryView {
    pub id: Uuid,
    pub kind: String,
    pub effective_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub memo: String,
    pub reference: Option<String>,
    pub reverses_entry_id: Option<Uuid>,
    pub actor_user_id: Option<Uuid>,
    pub postings: Vec<PostingView>,
}

/// An entry and its postings, each posting with its accounts' codes and types.
pub async fn entry_view(
    conn: &mut diesel_async::AsyncPgConnection,
    entry: EntryRow,
    lines: Vec<PostingRow>,
) -> Result<EntryView, ApiError> {
    let mut ids: Vec<Uuid> = lines.iter().flat_map(|p| [p.debit_account_id, p.credit_account_id]).collect();
    ids.sort_unstable();
    ids.dedup();
    let labels = store::account_labels(conn, &ids).await?;
    let label = |id: Uuid| {
        labels
            .get(&id)
            .cloned()
            .ok_or_else(|| ApiError::internal(super::LedgerError::Corrupt(format!("account {id} is missing"))))
    };
    let mut postings = Vec::with_capacity(lines.len());
    for p in lines {
        let (debit_account_code, debit_account_type) = label(p.debit_account_id)?;
        let (credit_account_code, credit_account_type) = label(p.credit_account_id)?;
        postings.push(PostingView {
            id: p.id,
            kind: p.kind.to_string(),
            debit_account_id: p.debit_account_id,
            debit_account_code,
            debit_account_type,
            credit_account_id: p.credit_account_id,
            credit_account_code,
            credit_account_type,
            amount: format_amount(p.amount, p.currency),
            pending_posting_id: p.pending_posting_id,
            currency: p.currency.to_string(),
        });
    }
    Ok(EntryView {
        id: entry.id,
        kind: entry.kind,
        effective_at: entry.effective_at,
        recorded_at: entry.recorded_at,
        memo: entry.memo,
        reference: entry.reference,
        reverses_entry_id: entry.reverses_entry_id,
        actor_user_id: entry.actor_user_id,
        postings,
    })
}

const MAX_MEMO: usize = 1000;
const MAX_POSTINGS: usize = 100;

fn check_memo(memo: &str) -> Result<String, ApiError> {
    let memo = memo.trim();
    if memo.is_empty() {
        return Err(ApiError::invalid("memo", "is required: say why"));
    }
    if memo.chars().count() > MAX_MEMO {
        return Err(ApiError::invalid("memo", format!("must be at most {MAX_MEMO} characters")));
    }
    Ok(memo.to_string())
}

/// Checks an adjustment's shape; account references are resolved later, in the transaction.
fn validate_adjustment(body: &NewAdjustment) -> Result<(String, Vec<Decimal>), ApiError> {
    let mut errors = Vec::new();
    let memo = check_memo(&body.memo).map_err(|e| errors.extend(e.errors)).ok();
    if body.postings.is_empty() || body.postings.len() > MAX_POSTINGS {
        errors.push(FieldError::new("postings", format!("must hold 1 to {MAX_POSTINGS} postings")));
    }
    if body.reference.as_ref().is_some_and(|r| r.chars().count() > 200) {
        errors.push(FieldError::new("reference", "must be at most 200 characters"));
    }
    let mut amounts = Vec::new();
    for (i, p) in body.postings.iter().enumerate() {
        match parse_amount(&p.amount, body.currency) {
            Ok(a) => amounts.push(a),
            Err(e) => errors.push(FieldError::new(format!("postings[{i}].amount"), e.to_string())),
        }
        if p.debit_account.trim() == p.credit_account.trim() {
            errors.push(FieldError::new(format!("postings[{i}]"), "debit and credit accounts must differ"));
        }
    }
    match (errors.is_empty(), memo) {
        (true, Some(memo)) => Ok((memo, amounts)),
        _ => Err(ApiError::validation(errors)),
    }
}

async fn resolve_account(
    conn: &mut diesel_async::AsyncPgConnection,
    reference: &str,
    currency: Currency,
    field: String,
) -> Result<Uuid, ApiError> {
    let reference = reference.trim();
    let row = match Uuid::parse_str(reference) {
        Ok(id) => store::account_by_id(conn, id).await?,
        Err(_) => store::account_by_code(conn, reference, currency).await?,
    };
    match row {
        Some(a) if a.currency == currency => {
            super::rules::adjustable(&a.code, a.account_type).map_err(|why| ApiError::invalid(field, why))?;
            Ok(a.id)
        }
        Some(_) => Err(ApiError::invalid(field, format!("account {reference} is not in {currency}"))),
        None => Err(ApiError::invalid(field, format!("no {currency} account {reference}"))),
    }
}

/// Records a manual `adjustment` entry (posted at once). Roles: finance, admin.
#[utoipa::path(tag = "ledger", request_body = NewAdjustment, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = EntryView),
        (status = 402, description = "A floor would be broken", body = crate::http::problem::Problem),
        (status = 422, body = crate::http::problem::Problem),
))]
#[post("/v1/journal-entries")]
pub async fn create_adjustment(write: Write<JsonBody<NewAdjustment>>) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require_finance()?;
    let (memo, amounts) = validate_adjustment(&body.value)?;
    let adjustment = body.value;
    let clock = op.state().clock;
    op.run(StatusCode::CREATED, async move |conn: &mut diesel_async::AsyncPgConnection| {
        let mut movements = Vec::with_capacity(amounts.len());
        for (i, (p, amount)) in adjustment.postings.iter().zip(amounts).enumerate() {
            let debit =
                resolve_account(conn, &p.debit_account, adjustment.currency, format!("postings[{i}].debit_account"))
                    .await?;
            let credit =
                resolve_account(conn, &p.credit_account, adjustment.currency, format!("postings[{i}].credit_account"))
                    .await?;
            movements.push(Movement::posted(debit, credit, amount));
        }
        let now = clock.now(conn).await?;
        let effective_at = match adjustment.effective_at {
            Some(at) if at > now => return Err(ApiError::invalid("effective_at", "must not be in the future")),
            Some(at) => at,
            None => now,
        };
        let mut entry = NewEntry::new(EntryKind::Adjustment, effective_at, movements);
        entry.actor = principal.actor();
        entry.memo = memo;
        entry.reference = adjustment.reference.clone();
        let posted = posting::post_entry(conn, entry).await?;
        let (entry, lines) = store::entry_with_postings(conn, posted.id)
            .await?
            .ok_or_else(|| ApiError::internal(std::io::Error::other("entry vanished after posting")))?;
        entry_view(conn, entry, lines).await
    })
    .await
}

/// One journal entry and its postings. Roles: finance, admin.
#[utoipa::path(tag = "ledger", params(("id" = Uuid, Path)), security(("bearer" = [])), responses(
    (status = 200, body = EntryView), (status = 404, body = crate::http::problem::Problem),
))]
#[get("/v1/journal-entries/{id}")]
pub async fn get_entry(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    _: NoQuery,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let id = id.into_inner();
    let mut conn = state.pool.get().await?;
    let (entry, lines) =
        store::entry_with_postings(&mut conn, id).await?.ok_or_else(|| ApiError::missing("journal entry", id))?;
    Ok(HttpResponse::Ok().json(entry_view(&mut conn, entry, lines).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReverseRequest {
    /// Why the entry is reversed: required.
    pub memo: String,
}

/// Reverses an entry of posted postings with a `reversal` that points at it.
/// Roles: finance, admin.
#[utoipa::path(tag = "ledger", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = ReverseRequest, security(("bearer" = [])), responses(
    (status = 201, body = EntryView),
    (status = 404, body = crate::http::problem::Problem),
    (status = 409, description = "Already reversed, or not reversible", body = crate::http::problem::Problem),
))]
#[post("/v1/journal-entries/{id}/reverse")]
pub async fn reverse_entry(
    write: Write<JsonBody<ReverseRequest>>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require_finance()?;
    let id = id.into_inner();
    let memo = check_memo(&body.value.memo)?;
    let clock = op.state().clock;
    op.run(StatusCode::CREATED, async move |conn: &mut diesel_async::AsyncPgConnection| {
        let now = clock.now(conn).await?;
        let posted = posting::reverse_entry(conn, id, principal.actor(), memo, now).await?;
        let (entry, lines) = store::entry_with_postings(conn, posted.id)
            .await?
            .ok_or_else(|| ApiError::internal(std::io::Error::other("entry vanished after posting")))?;
        entry_view(conn, entry, lines).await
    })
    .await
}

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_accounts)
        .service(get_account)
        .service(account_postings)
        .service(trial_balance)
        .service(verify_ledger)
        .service(create_adjustment)
        .service(get_entry)
        .service(reverse_entry);
}
