use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use uuid::Uuid;

use super::check::{LedgerSums, Outcome, order_differences, total_differences};
use super::*;

fn at(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).single().expect("instant")
}

fn org(n: u128, name: &str, category: Option<&str>) -> OrgRef {
    OrgRef { id: Uuid::from_u128(n), name: name.into(), category: category.map(Into::into) }
}

fn posting(n: u128, source: Source, amount: Decimal) -> OrderPosting {
    OrderPosting { posting_id: Uuid::from_u128(n), source, amount }
}

const PROGRAMME: Uuid = Uuid::from_u128(77);

/// 2 GPUs × 4 hours from `start`, subtotal 8,004: public 6,403 (80 %, floored),
/// private 1,601, fee 80; the grant's memo mirrors the public money.
fn order(start: DateTime<Utc>) -> OrderFacts {
    OrderFacts {
        id: Uuid::from_u128(1),
        currency: Currency::Krw,
        tenant: org(10, "SNU Vision Lab", Some("university")),
        provider: org(20, "Han River DC", None),
        gpu_model: "H100-SXM5-80GB".into(),
        region: "kr-seoul-1".into(),
        programme: Some(ProgrammeRef { id: PROGRAMME, name: "Voucher".into() }),
        start_at: start,
        hours: 4,
        gpus: 2,
        settled_hours: 0,
        charged_hours: 4,
        credits: BTreeMap::new(),
        postings: vec![
            posting(1, Source::Private, dec!(1601)),
            posting(2, Source::Public { programme: PROGRAMME }, dec!(6403)),
            posting(3, Source::Memo, dec!(6403)),
            posting(4, Source::Fee, dec!(80)),
        ],
    }
}

#[test]
fn group_by_takes_one_or_two_distinct_dimensions() {
    assert_eq!(parse_group_by("month"), Ok(vec![Dimension::Month]));
    assert_eq!(parse_group_by("month, tenant_category"), Ok(vec![Dimension::Month, Dimension::TenantCategory]));
    assert_eq!(parse_group_by("provider,programme"), Ok(vec![Dimension::Provider, Dimension::Programme]));
    assert_eq!(
        parse_group_by("week"),
        Err("unknown grouping \"week\": expected one of month, tenant_category, tenant, provider, gpu_model, region, programme".into())
    );
    assert_eq!(parse_group_by("month,month"), Err("month is named twice".into()));
    assert_eq!(
        parse_group_by("month,tenant,provider"),
        Err("at most 2 levels of grouping (e.g. month,tenant_category)".into())
    );
    assert!(parse_group_by("").is_err());
    assert!(parse_group_by("month,").is_err());
}

#[test]
fn postings_are_told_apart_by_their_accounts() {
    let (t, p, g) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
    let wallet = format!("liabilities:tenant:{t}:wallet");
    let payable = format!("liabilities:provider:{p}:payable");
    let receivable = format!("assets:subsidy-receivable:{PROGRAMME}");
    assert_eq!(classify(&wallet, &payable), Some(Source::Private));
    assert_eq!(classify(&receivable, &payable), Some(Source::Public { programme: PROGRAMME }));
    assert_eq!(classify(&payable, "revenue:platform-fees"), Some(Source::Fee));
    assert_eq!(
        classify(&format!("budget:grant:{g}:available"), &format!("budget:grant:{g}:spent")),
        Some(Source::Memo)
    );
    assert_eq!(classify("assets:bank", &wallet), None);
    assert_eq!(classify("assets:subsidy-receivable:not-a-uuid", &payable), None);
}

#[test]
fn hour_indices_start_at_or_after_a_bound() {
    let start = at(2026, 11, 30, 10);
    assert_eq!(first_hour_from(start, at(2026, 11, 30, 9), 4), 0);
    assert_eq!(first_hour_from(start, start, 4), 0);
    assert_eq!(first_hour_from(start, at(2026, 11, 30, 12), 4), 2);
    assert_eq!(first_hour_from(start, at(2026, 11, 30, 12) + chrono::TimeDelta::minutes(30), 4), 3);
    assert_eq!(first_hour_from(start, at(2026, 11, 30, 14), 4), 4);
    assert_eq!(first_hour_from(start, at(2027, 1, 1, 0), 4), 4);
}

#[test]
fn months_are_seoul_calendar_months() {
    let zone = REPORTING_TIME_ZONE;
    // 2026-11-30T14:00Z is 23:00 in Seoul; 15:00Z is midnight, 1 December.
    assert_eq!(month_of(at(2026, 11, 30, 14), zone), "2026-11");
    assert_eq!(month_of(at(2026, 11, 30, 15), zone), "2026-12");
    assert_eq!(next_month_start(at(2026, 11, 10, 0), zone), Some(at(2026, 11, 30, 15)));
    assert_eq!(next_month_start(at(2026, 11, 30, 15), zone), Some(at(2026, 12, 31, 15)));
    assert_eq!(next_month_start(at(2026, 12, 31, 15), zone), Some(at(2027, 1, 31, 15)));
}

#[test]
fn an_orders_hours_split_by_month_and_by_settlement() {
    // 13:00Z–17:00Z on 30 November: two hours in November (Seoul), two in December.
    let mut o = order(at(2026, 11, 30, 13));
    o.settled_hours = 1;
    let seg = |from, to, settled, month: &str| Segment { from, to, settled, month: month.into() };
    assert_eq!(
        segments(&o, Period::default(), REPORTING_TIME_ZONE),
        vec![seg(0, 1, true, "2026-11"), seg(1, 2, false, "2026-11"), seg(2, 4, false, "2026-12")]
    );
    // The period selects hours by their start.
    let december = Period { from: Some(at(2026, 11, 30, 15)), to: Some(at(2026, 12, 31, 15)) };
    assert_eq!(segments(&o, december, REPORTING_TIME_ZONE), vec![seg(2, 4, false, "2026-12")]);
    let middle = Period { from: Some(at(2026, 11, 30, 14)), to: Some(at(2026, 11, 30, 16)) };
    assert_eq!(
        segments(&o, middle, REPORTING_TIME_ZONE),
        vec![seg(1, 2, false, "2026-11"), seg(2, 3, false, "2026-12")]
    );
    // A cancellation after two hours: the freed hours carry nothing.
    o.charged_hours = 2;
    o.settled_hours = 2;
    assert_eq!(segments(&o, Period::default(), REPORTING_TIME_ZONE), vec![seg(0, 2, true, "2026-11")]);
    assert_eq!(segments(&o, december, REPORTING_TIME_ZONE), vec![]);
}

#[test]
fn a_segment_carries_its_hours_shares_less_their_credits() {
    let mut o = order(at(2026, 11, 2, 0));
    // One of the two GPUs lost in hour 2.
    o.credits = BTreeMap::from([(2, 1)]);
    let seg = |from, to| Segment { from, to, settled: false, month: "2026-11".into() };
    // Hourly: private 400 (last 401), public 1,600 (last 1,603), fee 20; hour 2 loses half.
    assert_eq!(
        segment_amounts(&o, &seg(0, 4)),
        Amounts { gpu_hours: 7, public: dec!(5603), private: dec!(1401), fees: dec!(70) }
    );
    assert_eq!(
        segment_amounts(&o, &seg(2, 3)),
        Amounts { gpu_hours: 1, public: dec!(800), private: dec!(200), fees: dec!(10) }
    );
    assert_eq!(
        segment_amounts(&o, &seg(3, 4)),
        Amounts { gpu_hours: 2, public: dec!(1603), private: dec!(401), fees: dec!(20) }
    );
    assert_eq!(segment_amounts(&o, &seg(0, 4)).subtotal(), dec!(7004));
}

#[test]
fn figures_group_two_levels_deep_per_currency_by_name() {
    let mut first = order(at(2026, 11, 30, 13));
    first.settled_hours = 2;
    let mut second = order(at(2026, 12, 5, 0));
    second.id = Uuid::from_u128(2);
    second.tenant = org(11, "Ace Startup", Some("sme"));
    second.programme = None;
    second.postings = vec![posting(5, Source::Private, dec!(8004))];
    let mut usd = order(at(2026, 12, 5, 0));
    usd.currency = Currency::Usd;
    usd.postings = vec![posting(6, Source::Private, dec!(10.00))];
    let report = aggregate(
        &[first, second, usd],
        Period::default(),
        REPORTING_TIME_ZONE,
        &[Dimension::Month, Dimension::Tenant],
    )
    .expect("no overflow");
    assert_eq!(report.keys().copied().collect::<Vec<_>>(), vec![Currency::Krw, Currency::Usd]);
    let krw = &report[&Currency::Krw];
    assert_eq!(
        krw.tally,
        Tally {
            settled: Amounts { gpu_hours: 4, public: dec!(3200), private: dec!(800), fees: dec!(40) },
            committed: Amounts { gpu_hours: 12, public: dec!(3203), private: dec!(8805), fees: dec!(40) },
        }
    );
    let months: Vec<&str> = krw.children.values().map(|(l, _)| l.key.as_str()).collect();
    assert_eq!(months, vec!["2026-11", "2026-12"]);
    let (_, december) = &krw.children[&("2026-12".to_string(), "2026-12".to_string())];
    // Sorted by name: "Ace Startup" before "SNU Vision Lab".
    let tenants: Vec<(&str, Option<&OrgRef>)> =
        december.children.values().map(|(l, _)| (l.name.as_str(), l.org.as_ref())).collect();
    assert_eq!(
        tenants,
        vec![
            ("Ace Startup", Some(&org(11, "Ace Startup", Some("sme")))),
            ("SNU Vision Lab", Some(&org(10, "SNU Vision Lab", Some("university"))))
        ]
    );
    assert_eq!(december.tally.committed.private, dec!(8004) + dec!(801));
    assert_eq!(report[&Currency::Usd].tally.committed.private, dec!(10.00));
}

#[test]
fn ratios_are_exact_quotients_rounded_for_display() {
    assert_eq!(ratio(dec!(1), dec!(3), 4), Some("0.3333".into()));
    assert_eq!(ratio(dec!(2), dec!(3), 4), Some("0.6667".into()));
    assert_eq!(ratio(dec!(5603), dec!(7004), 4), Some("0.8000".into()));
    assert_eq!(ratio(dec!(1401), dec!(5603), 4), Some("0.2500".into()));
    assert_eq!(ratio(dec!(7004), dec!(0), 4), None);
    assert_eq!(ratio(dec!(0), dec!(5), 4), Some("0.0000".into()));
}

#[test]
fn figures_show_ratios_and_null_where_there_is_no_public_money() {
    let t = Tally {
        settled: Amounts { gpu_hours: 4, public: dec!(0), private: dec!(4000), fees: dec!(0) },
        committed: Amounts::default(),
    };
    let f = FundingFigures::of(&t, Currency::Krw).expect("figures");
    assert_eq!((f.public_share.as_deref(), f.private_per_public.as_deref()), (Some("0.0000"), None));
    assert_eq!((f.subtotal.as_str(), f.committed.subtotal.as_str()), ("4000", "0"));
    let empty = FundingFigures::of(&Tally::default(), Currency::Usd).expect("figures");
    assert_eq!((empty.subtotal.as_str(), empty.public_share), ("0.00", None));
}

#[test]
fn the_csv_has_a_row_per_group_and_a_total_and_no_formulas() {
    let mut o = order(at(2026, 11, 2, 0));
    o.provider = org(20, "=HYPERLINK(\"x\"), Inc", None);
    let report = aggregate(&[o], Period::default(), REPORTING_TIME_ZONE, &[Dimension::Provider]).expect("sums");
    let view = currency_view(Currency::Krw, &report[&Currency::Krw], &[Dimension::Provider]).expect("view");
    let text = csv(&[Dimension::Provider], &[view]);
    let figures = "8,8004,6403,1601,80,0.8000,0.2500,0,0,0,0,0,8,8004,6403,1601,80";
    let provider = Uuid::from_u128(20);
    assert_eq!(
        text,
        format!(
            "currency,level,provider,provider_name,gpu_hours,subtotal,public,private,fees,public_share,private_per_public,\
             settled_gpu_hours,settled_subtotal,settled_public,settled_private,settled_fees,\
             committed_gpu_hours,committed_subtotal,committed_public,committed_private,committed_fees\n\
             KRW,1,{provider},\"'=HYPERLINK(\"\"x\"\"), Inc\",{figures}\n\
             KRW,0,,,{figures}\n"
        )
    );
}

#[test]
fn the_one_line_summary_is_compact() {
    assert_eq!(compact(dec!(25_312_345)), "25.3M");
    assert_eq!(compact(dec!(5_000_000_000)), "5.0B");
    assert_eq!(compact(dec!(1_250)), "1.3k");
    assert_eq!(compact(dec!(999)), "999");
    let t = Tally {
        settled: Amounts { gpu_hours: 1, public: dec!(25_312_345), private: dec!(31_878_000), fees: dec!(0) },
        committed: Amounts::default(),
    };
    assert_eq!(
        summary_line(Currency::Krw, &t).expect("line"),
        "public 25.3M KRW, private 31.9M KRW, 1.26 private won per public won"
    );
    let private_only = Tally { settled: Amounts { private: dec!(1000), ..Amounts::default() }, ..Tally::default() };
    assert_eq!(
        summary_line(Currency::Krw, &private_only).expect("line"),
        "public 0 KRW, private 1.0k KRW, no public money"
    );
}

#[test]
fn the_reconciliation_finds_an_hour_the_ledger_did_not_charge() {
    let mut o = order(at(2026, 11, 2, 0));
    o.settled_hours = 3;
    o.credits = BTreeMap::from([(2, 1)]);
    // What the ledger did: hours 0–2 posted (400 × 3 private), hour 2's half refunded, hour 3 pending.
    let mut outcomes: HashMap<Uuid, Outcome> = HashMap::from([
        (Uuid::from_u128(1), Outcome { posted: dec!(1200), refunded: dec!(200), remaining: dec!(401) }),
        (Uuid::from_u128(2), Outcome { posted: dec!(4800), refunded: dec!(800), remaining: dec!(1603) }),
        (Uuid::from_u128(3), Outcome { posted: dec!(4800), refunded: dec!(800), remaining: dec!(1603) }),
        (Uuid::from_u128(4), Outcome { posted: dec!(60), refunded: dec!(10), remaining: dec!(20) }),
    ]);
    assert_eq!(order_differences(&o, &outcomes), vec![]);
    outcomes.insert(Uuid::from_u128(1), Outcome { posted: dec!(1200), refunded: dec!(0), remaining: dec!(401) });
    let found = order_differences(&o, &outcomes);
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].ledger.as_str(), found[0].report.as_str()), ("1200", "1000"));

    let report = Amounts { gpu_hours: 7, public: dec!(5603), private: dec!(1401), fees: dec!(70) };
    let ledger = LedgerSums { private: dec!(1401), public: dec!(5603), fees: dec!(70), earned: dec!(6934) };
    assert_eq!(total_differences(Currency::Krw, "settled", &report, &ledger), vec![]);
    let short = LedgerSums { earned: dec!(6933), ..ledger };
    let found = total_differences(Currency::Krw, "settled", &report, &short);
    assert_eq!(
        found.iter().map(|m| m.subject.as_str()).collect::<Vec<_>>(),
        vec!["settled subtotal − fees (providers' earnings)"]
    );
}

#[test]
fn a_two_level_csv_gives_each_first_level_subtotal_before_its_subgroups() {
    let o = order(at(2026, 11, 30, 13));
    let dims = [Dimension::Month, Dimension::Programme];
    let report = aggregate(&[o], Period::default(), REPORTING_TIME_ZONE, &dims).expect("sums");
    let view = currency_view(Currency::Krw, &report[&Currency::Krw], &dims).expect("view");
    let text = csv(&dims, &[view]);
    assert_eq!(text.lines().count(), 6, "{text}");
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').take(9).collect()).collect();
    assert_eq!(
        lines[0],
        vec![
            "currency",
            "level",
            "month",
            "month_name",
            "programme",
            "programme_name",
            "gpu_hours",
            "subtotal",
            "public"
        ]
    );
    let p = PROGRAMME.to_string();
    // Hours 0–1 in November (Seoul), 2–3 in December: 400 + 400 and 400 + 401 private, 1,600 an hour public.
    assert_eq!(lines[1], vec!["KRW", "1", "2026-11", "2026-11", "", "", "4", "4000", "3200"]);
    assert_eq!(lines[2], vec!["KRW", "2", "2026-11", "2026-11", p.as_str(), "Voucher", "4", "4000", "3200"]);
    assert_eq!(lines[3], vec!["KRW", "1", "2026-12", "2026-12", "", "", "4", "4004", "3203"]);
    assert_eq!(lines[4], vec!["KRW", "2", "2026-12", "2026-12", p.as_str(), "Voucher", "4", "4004", "3203"]);
    assert_eq!(lines[5], vec!["KRW", "0", "", "", "", "", "8", "8004", "6403"]);
}
