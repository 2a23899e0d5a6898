//! A model-checked ledger (issue 8): random sequences of every money operation
//! — deposits, orders (capacity, funds and grant caps), clock moves and
//! settlement, outages (partial, overlapping, before and after settlement),
//! cancellations, payouts, grant closes and withdrawals, claims (some voided
//! as drafts) with their payments and write-offs, credit notes, adjustments and
//! their reversals — run against the real service
//! and database, while a small in-memory model of the money predicts every
//! answer and every figure. After each step the wallets, payables, the
//! provider receivables, the grants, the programme report and the bank are
//! compared with the model, and `verify` must be clean.
//!
//! The model is written independently of the service: its own pricing (SPEC
//! section 2), its own hour schedule (each hour carries `floor(amount ÷ hours)`,
//! the last the remainder, less what outages credited for that very hour) and
//! its own outage allocation (oldest order first).
//!
//! Seeded and repeatable: a failure prints its seed; `GPUHOUR_MODEL_SEED=N`
//! replays one sequence, `GPUHOUR_MODEL_SEQUENCES=N` runs more (the longer run
//! in docs/operations.md uses thousands). It catches the outage-then-cancel
//! defect (issue 8, defect 1): with the per-hour attribution of
//! `market::settlement` reverted to taking voids off the last hours, the fixed
//! regression case below and random seeds fail on the tenant's wallet and on
//! `verify`'s invariant 5.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use gpuhour::auth::Role;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Value, json};

use crate::helpers::{Caller, TestApp, hour_after, json, now, spawn_app_with};

fn d(v: &Value) -> Decimal {
    v.as_str().unwrap_or_else(|| panic!("a decimal string, got {v}")).parse().expect("decimal")
}

fn floor0(x: Decimal) -> Decimal {
    x.floor()
}

fn round_half_up0(x: Decimal) -> Decimal {
    x.round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

/// One hour's share of `amount` over `hours` hours.
fn share(amount: Decimal, hour: i32, hours: i32) -> Decimal {
    let hourly = floor0(amount / Decimal::from(hours));
    if hour == hours - 1 { amount - hourly * Decimal::from(hours - 1) } else { hourly }
}

/// What `credited` of `gpus` GPUs lost in an hour take off its share.
fn credit(share: Decimal, credited: i32, gpus: i32) -> Decimal {
    if credited >= gpus { share } else { floor0(share * Decimal::from(credited) / Decimal::from(gpus)) }
}

#[derive(Debug, Clone)]
struct Order {
    id: String,
    tenant: usize,
    listing: usize,
    grant: Option<usize>,
    gpus: i32,
    hours: i32,
    start: DateTime<Utc>,
    tenant_amount: Decimal,
    subsidy: Decimal,
    fee: Decimal,
    settled: i32,
    charged: i32,
    cancelled: bool,
    credits: BTreeMap<i32, i32>,
}

impl Order {
    /// Net of one of its postings over hours [from, to).
    fn net(&self, amount: Decimal, from: i32, to: i32) -> Decimal {
        (from..to.min(self.hours))
            .map(|h| {
                let s = share(amount, h, self.hours);
                s - credit(s, self.credits.get(&h).copied().unwrap_or(0), self.gpus)
            })
            .sum()
    }
    fn posted(&self, amount: Decimal) -> Decimal {
        self.net(amount, 0, self.settled)
    }
    fn pending(&self, amount: Decimal) -> Decimal {
        self.net(amount, self.settled, self.charged)
    }
    fn hour_start(&self, h: i32) -> DateTime<Utc> {
        self.start + Duration::hours(i64::from(h))
    }
}

#[derive(Debug, Clone)]
struct Listing {
    id: String,
    provider: usize,
    gpus: i32,
    price: Decimal,
    reserved: BTreeMap<DateTime<Utc>, i32>,
}

#[derive(Debug, Clone)]
struct Grant {
    id: String,
    tenant: usize,
    amount: Decimal,
    rate: Decimal,
    released: Decimal,
    closed: bool,
}

#[derive(Debug, Clone)]
struct Claim {
    /// Per provider: the subsidy of theirs the claim holds.
    lines: Vec<Decimal>,
    amount: Decimal,
    paid: Decimal,
    written_off: Decimal,
}

/// Subsidy given back to the programme for a grant, taken off a provider.
#[derive(Debug, Clone)]
struct CreditNote {
    grant: usize,
    provider: usize,
    amount: Decimal,
}

struct Model {
    fee_rate: Decimal,
    deposits: Vec<Decimal>,
    listings: Vec<Listing>,
    grants: Vec<Grant>,
    orders: Vec<Order>,
    cash_paid_out: Vec<Decimal>,
    /// What each provider owes back (outage credits after it was paid out).
    owed: Vec<Decimal>,
    claims: Vec<Claim>,
    credit_notes: Vec<CreditNote>,
    claimed: Decimal,
    claim_paid: Decimal,
    adjustments: Decimal,
    budget: Decimal,
}

impl Model {
    fn wallet(&self, tenant: usize) -> (Decimal, Decimal) {
        let mine = self.orders.iter().filter(|o| o.tenant == tenant);
        let posted: Decimal = mine.clone().map(|o| o.posted(o.tenant_amount)).sum();
        let pending: Decimal = mine.map(|o| o.pending(o.tenant_amount)).sum();
        (self.deposits[tenant] - posted, pending)
    }
    fn credited_to(&self, provider: usize) -> Decimal {
        self.credit_notes.iter().filter(|c| c.provider == provider).map(|c| c.amount).sum()
    }
    fn earned(&self, provider: usize) -> Decimal {
        -self.credited_to(provider)
            + self
                .orders
                .iter()
                .filter(|o| self.listings[o.listing].provider == provider)
                .map(|o| o.posted(o.tenant_amount) + o.posted(o.subsidy) - o.posted(o.fee))
                .sum::<Decimal>()
    }
    fn subsidy_earned(&self, provider: usize) -> Decimal {
        self.orders
            .iter()
            .filter(|o| self.listings[o.listing].provider == provider)
            .map(|o| o.posted(o.subsidy))
            .sum::<Decimal>()
            - self.credited_to(provider)
    }
    fn payable(&self, provider: usize) -> Decimal {
        self.earned(provider) - self.cash_paid_out[provider] + self.owed[provider]
    }
    /// What the provider may be paid now: the payable less what it owes back
    /// and less the subsidy the programme has not paid yet (claims paid in
    /// part release their lines in proportion, floored).
    fn payable_now(&self, provider: usize) -> Decimal {
        let received: Decimal = self
            .claims
            .iter()
            .map(|c| {
                let line = c.lines[provider];
                // A write-off settles a claim as a payment does: the operator's loss.
                let settled = c.paid + c.written_off;
                if line <= Decimal::ZERO || c.amount <= Decimal::ZERO || settled >= c.amount {
                    line
                } else {
                    floor0(line * settled / c.amount)
                }
            })
            .sum();
        let awaiting = (self.subsidy_earned(provider) - received).max(Decimal::ZERO);
        let payable = self.payable(provider);
        (payable - self.owed[provider].min(payable) - awaiting).max(Decimal::ZERO)
    }
    fn grant_used(&self, g: usize) -> (Decimal, Decimal) {
        let of = self.orders.iter().filter(|o| o.grant == Some(g));
        let credited: Decimal = self.credit_notes.iter().filter(|c| c.grant == g).map(|c| c.amount).sum();
        (of.clone().map(|o| o.posted(o.subsidy)).sum::<Decimal>() - credited, of.map(|o| o.pending(o.subsidy)).sum())
    }
    fn grant_left(&self, g: usize) -> Decimal {
        let (spent, committed) = self.grant_used(g);
        self.grants[g].amount - spent - committed - self.grants[g].released
    }
    fn subsidy_posted(&self) -> Decimal {
        self.orders.iter().map(|o| o.posted(o.subsidy)).sum::<Decimal>()
            - self.credit_notes.iter().map(|c| c.amount).sum::<Decimal>()
    }
    fn subsidy_pending(&self) -> Decimal {
        self.orders.iter().map(|o| o.pending(o.subsidy)).sum()
    }
}

struct World {
    app: TestApp,
    finance: String,
    tenants: Vec<Caller>,
    providers: Vec<Caller>,
    programme: Value,
    clock: DateTime<Utc>,
    m: Model,
    log: Vec<String>,
}

impl World {
    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let (status, v) = json(self.app.post(path, token, &body, None).await).await;
        (status.as_u16(), v)
    }

    async fn get(&self, path: &str) -> Value {
        let (status, v) = json(self.app.get(path, &self.finance).await).await;
        assert_eq!(status, 200, "{path}: {v:#}");
        v
    }

    fn fail(&self, seed: u64, what: String) -> ! {
        panic!("model seed {seed}: {what}\nsteps:\n  {}", self.log.join("\n  "))
    }

    /// Every figure the API reports, against the model.
    async fn check(&self, seed: u64) {
        let tb = self.get("/v1/reports/trial-balance").await;
        let balance = |code: &str| -> (Decimal, Decimal) {
            tb["data"]
                .as_array()
                .expect("data")
                .iter()
                .find(|a| a["code"] == code && a["currency"] == "KRW")
                .map(|a| (d(&a["balance"]), d(&a["debits_pending"])))
                .unwrap_or_else(|| panic!("account {code}"))
        };
        for (i, t) in self.tenants.iter().enumerate() {
            let got = balance(&format!("liabilities:tenant:{}:wallet", t.org_id));
            let want = self.m.wallet(i);
            if got != want {
                self.fail(seed, format!("tenant {i} wallet (balance, pending debits): got {got:?}, model {want:?}"));
            }
        }
        for (i, p) in self.providers.iter().enumerate() {
            let (payable, _) = balance(&format!("liabilities:provider:{}:payable", p.org_id));
            let (owed, _) = balance(&format!("assets:provider:{}:receivable", p.org_id));
            let want = (self.m.payable(i), self.m.owed[i]);
            if (payable, owed) != want || payable < Decimal::ZERO {
                self.fail(
                    seed,
                    format!("provider {i} (payable, owed back): got {:?}, model {want:?}", (payable, owed)),
                );
            }
        }
        for (g, grant) in self.m.grants.iter().enumerate() {
            let v = self.get(&format!("/v1/grants/{}", grant.id)).await;
            let (spent, committed) = self.m.grant_used(g);
            let got = (d(&v["spent"]), d(&v["committed"]), d(&v["available"]));
            let want = (spent, committed, self.m.grant_left(g));
            if got != want {
                self.fail(seed, format!("grant {g} (spent, committed, available): got {got:?}, model {want:?}"));
            }
        }
        let r = self.get(&format!("/v1/reports/programmes/{}", self.programme["id"].as_str().expect("id"))).await;
        let released: Decimal = self.m.grants.iter().map(|g| g.released).sum();
        let got = [&r["spent"], &r["committed"], &r["claimed"], &r["paid"], &r["released"]].map(d);
        let want = [self.m.subsidy_posted(), self.m.subsidy_pending(), self.m.claimed, self.m.claim_paid, released];
        if got != want {
            self.fail(
                seed,
                format!("programme (spent, committed, claimed, paid, released): got {got:?}, model {want:?}"),
            );
        }
        let granted: Decimal = self.m.grants.iter().map(|g| g.amount).sum();
        if d(&r["unallocated"]) != self.m.budget - granted + released {
            self.fail(seed, format!("programme unallocated {}", r["unallocated"]));
        }
        let report = self.get("/v1/ledger/verify").await;
        if report != json!({"ok": true, "differences": []}) {
            self.fail(seed, format!("verify: {report:#}"));
        }
    }

    async fn set_clock(&mut self, to: DateTime<Utc>) {
        let (status, body) = self.post("/v1/sandbox/clock", &self.finance.clone(), json!({"now": to})).await;
        assert_eq!(status, 200, "{body:#}");
        self.clock = to;
    }

    fn begun(&self, o: &Order) -> i32 {
        if self.clock < o.start { 0 } else { (((self.clock - o.start).num_hours() + 1) as i32).min(o.hours) }
    }

    fn elapsed(&self, o: &Order) -> i32 {
        if self.clock <= o.start { 0 } else { ((self.clock - o.start).num_hours() as i32).min(o.hours) }
    }
}

async fn world(seed: u64, rng: &mut StdRng) -> World {
    let fee_rate = if rng.random_bool(0.5) { Decimal::ZERO } else { Decimal::new(5, 2) };
    let app = spawn_app_with(|s| s.fee_rate = fee_rate).await;
    let finance = app.token(Role::Finance).await;
    let clock = now(&app, &finance).await;
    let mut tenants = Vec::new();
    for _ in 0..3 {
        tenants.push(app.caller(Role::Tenant).await);
    }
    let providers = vec![app.caller(Role::Provider).await, app.caller(Role::Provider).await];
    let budget = Decimal::from(10_000_000);
    let body = json!({"name": format!("model {seed}"), "sponsor": "Ministry", "fiscal_year": 2026, "currency": "KRW",
        "budget": budget.to_string(), "starts_at": clock - Duration::days(1), "ends_at": clock + Duration::days(365),
        "default_rate": "0.7"});
    let (status, programme) = json(app.post("/v1/programmes", &finance, &body, None).await).await;
    assert_eq!(status, 201, "{programme:#}");
    let mut w = World {
        app,
        finance,
        tenants,
        providers,
        programme,
        clock,
        m: Model {
            fee_rate,
            deposits: vec![Decimal::ZERO; 3],
            listings: Vec::new(),
            grants: Vec::new(),
            orders: Vec::new(),
            cash_paid_out: vec![Decimal::ZERO; 2],
            owed: vec![Decimal::ZERO; 2],
            claims: Vec::new(),
            credit_notes: Vec::new(),
            claimed: Decimal::ZERO,
            claim_paid: Decimal::ZERO,
            adjustments: Decimal::ZERO,
            budget,
        },
        log: vec![format!("fee rate {fee_rate}")],
    };
    let start = hour_after(clock);
    for provider in 0..2 {
        for _ in 0..3 {
            let gpus = [1, 2, 4][rng.random_range(0..3)];
            let price = ["1000", "1000.5", "777.25"][rng.random_range(0..3)];
            let body = json!({"gpu_model": "H100-SXM5-80GB", "gpu_memory_gb": 80, "gpus": gpus, "region": "kr-seoul-1",
                "price_per_gpu_hour": price, "currency": "KRW", "available_from": start,
                "available_until": start + Duration::hours(400)});
            let (status, l) = w.post("/v1/listings", &w.providers[provider].token.clone(), body).await;
            assert_eq!(status, 201, "{l:#}");
            w.m.listings.push(Listing {
                id: l["id"].as_str().expect("id").into(),
                provider,
                gpus,
                price: price.parse().expect("price"),
                reserved: BTreeMap::new(),
            });
        }
    }
    w
}

async fn deposit(w: &mut World, rng: &mut StdRng) {
    let tenant = rng.random_range(0..3);
    let amount = Decimal::from(rng.random_range(1..=40) * 1000);
    let body = json!({"tenant_org_id": w.tenants[tenant].org_id, "amount": amount.to_string(), "currency": "KRW",
        "reference": format!("wire-{}", uuid::Uuid::now_v7())});
    let (status, v) = w.post("/v1/deposits", &w.finance.clone(), body).await;
    assert_eq!(status, 201, "{v:#}");
    w.m.deposits[tenant] += amount;
    w.log.push(format!("deposit {amount} to tenant {tenant}"));
}

async fn grant(w: &mut World, rng: &mut StdRng) {
    let tenant = rng.random_range(0..3);
    let amount = Decimal::from(rng.random_range(1..=30) * 500);
    let rate = ["0.5", "0.8", "0.9"][rng.random_range(0..3)];
    let body = json!({"tenant_org_id": w.tenants[tenant].org_id, "amount": amount.to_string(), "rate": rate,
        "valid_from": w.clock - Duration::days(1), "valid_until": w.clock + Duration::days(300)});
    let path = format!("/v1/programmes/{}/grants", w.programme["id"].as_str().expect("id"));
    let (status, g) = w.post(&path, &w.finance.clone(), body).await;
    assert_eq!(status, 201, "{g:#}");
    w.m.grants.push(Grant {
        id: g["id"].as_str().expect("id").into(),
        tenant,
        amount,
        rate: rate.parse().expect("rate"),
        released: Decimal::ZERO,
        closed: false,
    });
    w.log.push(format!("grant {} of {amount} at {rate} to tenant {tenant}", w.m.grants.len() - 1));
}

async fn order(w: &mut World, rng: &mut StdRng, seed: u64) {
    let tenant = rng.random_range(0..3);
    let listing = rng.random_range(0..w.m.listings.len());
    let l = w.m.listings[listing].clone();
    let gpus = rng.random_range(1..=l.gpus);
    let hours: i32 = rng.random_range(1..=6);
    let first = hour_after(w.clock);
    let start = first + Duration::hours(rng.random_range(0..6));
    let grants: Vec<usize> = (0..w.m.grants.len()).filter(|&g| w.m.grants[g].tenant == tenant).collect();
    let grant =
        if !grants.is_empty() && rng.random_bool(0.7) { Some(grants[rng.random_range(0..grants.len())]) } else { None };
    let mut body =
        json!({"listing_id": l.id, "gpus": gpus, "start": start, "end": start + Duration::hours(i64::from(hours))});
    if let Some(g) = grant {
        body["grant_id"] = json!(w.m.grants[g].id);
    }
    // The model's answer first.
    let subtotal = round_half_up0(l.price * Decimal::from(gpus) * Decimal::from(hours));
    let subsidy = grant.map_or(Decimal::ZERO, |g| floor0(subtotal * w.m.grants[g].rate).min(w.m.grant_left(g)));
    let tenant_amount = subtotal - subsidy;
    let fee = round_half_up0(subtotal * w.m.fee_rate);
    let (posted, pending) = w.m.wallet(tenant);
    let full = (0..hours)
        .any(|h| l.reserved.get(&(start + Duration::hours(i64::from(h)))).copied().unwrap_or(0) + gpus > l.gpus);
    let expected = if grant.is_some_and(|g| w.m.grants[g].closed) {
        422
    } else if full {
        409
    } else if tenant_amount > posted - pending {
        402
    } else {
        201
    };
    let (status, v) = w.post("/v1/orders", &w.tenants[tenant].token.clone(), body).await;
    w.log.push(format!(
        "order tenant {tenant} listing {listing} {gpus} GPUs × {hours} h from +{} h, grant {grant:?}: model {expected}, got {status}",
        (start - first).num_hours()
    ));
    if status != expected {
        w.fail(seed, format!("order answered {status}, model says {expected}: {v:#}"));
    }
    if status != 201 {
        return;
    }
    let got = [&v["subsidy"], &v["tenant_amount"], &v["platform_fee"]].map(d);
    if got != [subsidy, tenant_amount, fee] {
        w.fail(seed, format!("order breakdown {got:?}, model {:?}", [subsidy, tenant_amount, fee]));
    }
    for h in 0..hours {
        *w.m.listings[listing].reserved.entry(start + Duration::hours(i64::from(h))).or_default() += gpus;
    }
    w.m.orders.push(Order {
        id: v["id"].as_str().expect("id").into(),
        tenant,
        listing,
        grant,
        gpus,
        hours,
        start,
        tenant_amount,
        subsidy,
        fee,
        settled: 0,
        charged: hours,
        cancelled: false,
        credits: BTreeMap::new(),
    });
}

async fn advance(w: &mut World, rng: &mut StdRng) {
    let minutes = rng.random_range(1..=12) * 30;
    let to = w.clock + Duration::minutes(minutes);
    w.set_clock(to).await;
    let (status, v) = w.post("/v1/settlements/run", &w.finance.clone(), json!({})).await;
    assert_eq!(status, 200, "{v:#}");
    for i in 0..w.m.orders.len() {
        let o = &w.m.orders[i];
        if !o.cancelled {
            let upto = w.elapsed(o).min(o.charged);
            w.m.orders[i].settled = upto.max(o.settled);
        }
    }
    w.log.push(format!("clock +{minutes} min, settled"));
}

async fn cancel(w: &mut World, rng: &mut StdRng, seed: u64) {
    if w.m.orders.is_empty() {
        return;
    }
    let i = rng.random_range(0..w.m.orders.len());
    let o = w.m.orders[i].clone();
    let begun = w.begun(&o);
    let completed = !o.cancelled && o.settled >= o.hours;
    let expected = if o.cancelled || completed || begun >= o.hours { 409 } else { 200 };
    let (status, v) =
        w.post(&format!("/v1/orders/{}/cancel", o.id), &w.tenants[o.tenant].token.clone(), json!({})).await;
    w.log.push(format!("cancel order {i} ({begun} of {} h begun): model {expected}, got {status}", o.hours));
    if status != expected {
        w.fail(seed, format!("cancel answered {status}, model {expected}: {v:#}"));
    }
    if status == 200 {
        for h in begun..o.hours {
            *w.m.listings[o.listing].reserved.entry(o.hour_start(h)).or_default() -= o.gpus;
        }
        let m = &mut w.m.orders[i];
        m.cancelled = true;
        m.charged = begun;
        m.settled = begun;
    }
}

async fn outage(w: &mut World, rng: &mut StdRng) {
    if w.m.orders.is_empty() {
        return;
    }
    // Around an order's hours, so that it usually hits something.
    let o = w.m.orders[rng.random_range(0..w.m.orders.len())].clone();
    let listing = o.listing;
    let from = o.start + Duration::hours(rng.random_range(-1..=o.hours as i64 - 1));
    let until = from + Duration::hours(rng.random_range(1..=3));
    let gpus = rng.random_range(1..=w.m.listings[listing].gpus);
    let body = json!({"start": from, "end": until, "gpus": gpus});
    let provider = w.m.listings[listing].provider;
    let path = format!("/v1/listings/{}/outages", w.m.listings[listing].id);
    let (status, v) = w.post(&path, &w.providers[provider].token.clone(), body).await;
    w.log.push(format!(
        "outage listing {listing} {gpus} GPUs from order {}'s start {:+} h for {} h: {status}",
        o.id,
        (from - o.start).num_hours(),
        (until - from).num_hours()
    ));
    assert_eq!(status, 201, "{v:#}");
    let payable_before = w.m.payable(provider);
    let earned_before = w.m.earned(provider);
    // Oldest order first, hour by hour, never more than it bought or than
    // earlier outages credited; only hours it is charged for.
    let mut hour = from;
    while hour < until {
        let mut left = gpus;
        for m in w.m.orders.iter_mut().filter(|m| m.listing == listing) {
            if left == 0 {
                break;
            }
            let h = (hour - m.start).num_hours() as i32;
            if hour < m.start || h >= m.charged {
                continue;
            }
            let open = m.gpus - m.credits.get(&h).copied().unwrap_or(0);
            let take = open.min(left);
            if take > 0 {
                *m.credits.entry(h).or_default() += take;
                left -= take;
            }
        }
        hour += Duration::hours(1);
    }
    // Refunds of hours already paid out leave a receivable, never a negative payable.
    let change = w.m.earned(provider) - earned_before;
    let owed_after = (-(payable_before + change)).max(Decimal::ZERO);
    w.m.owed[provider] += (owed_after - (-payable_before).max(Decimal::ZERO)).max(Decimal::ZERO);
}

async fn payout(w: &mut World, rng: &mut StdRng, seed: u64) {
    let provider = rng.random_range(0..2);
    let p = w.providers[provider].org_id;
    let statement = w.get(&format!("/v1/reports/statements/{p}?currency=KRW")).await;
    let Some(position) = statement["payout_positions"].as_array().and_then(|a| a.first()).cloned() else { return };
    let now_payable = w.m.payable_now(provider);
    if d(&position["payable_now"]) != now_payable {
        w.fail(seed, format!("provider {provider} payable now {}, model {now_payable}", position["payable_now"]));
    }
    let owed = w.m.owed[provider];
    if now_payable <= Decimal::ZERO {
        return;
    }
    let over = rng.random_bool(0.2);
    let amount = if over {
        now_payable + Decimal::ONE
    } else {
        Decimal::from(rng.random_range(1..=now_payable.to_i64().unwrap_or(1)))
    };
    let body = json!({"provider_org_id": p, "amount": amount.to_string(), "currency": "KRW", "reference": format!("P-{}", uuid::Uuid::now_v7())});
    let (status, v) = w.post("/v1/payouts", &w.finance.clone(), body).await;
    w.log.push(format!(
        "payout {amount} to provider {provider} (payable now {now_payable}, owed back {owed}): {status}"
    ));
    let expected = if over { 422 } else { 201 };
    if status != expected {
        w.fail(seed, format!("payout answered {status}, model {expected}: {v:#}"));
    }
    if status == 201 {
        let recovered = owed.min(w.m.payable(provider));
        w.m.owed[provider] -= recovered;
        w.m.cash_paid_out[provider] += amount;
    }
}

async fn claim(w: &mut World, rng: &mut StdRng, seed: u64) {
    let body = json!({"programme_id": w.programme["id"], "period_start": "2020-01-01T00:00:00Z", "period_end": "2099-01-01T00:00:00Z"});
    let (status, c) = w.post("/v1/claims", &w.finance.clone(), body).await;
    let expected = w.m.subsidy_posted() - w.m.claimed;
    w.log.push(format!("claim: {status}, model amount {expected}"));
    if status == 409 {
        if expected != Decimal::ZERO {
            w.fail(seed, format!("no claim, but the model has {expected} unclaimed"));
        }
        return;
    }
    assert_eq!(status, 201, "{c:#}");
    if d(&c["amount"]) != expected {
        w.fail(seed, format!("claim of {}, model {expected}", c["amount"]));
    }
    let path = format!("/v1/claims/{}", c["id"].as_str().expect("id"));
    if rng.random_bool(0.2) {
        // A draft voided: its postings are claimable again.
        let (status, v) = w.post(&format!("{path}/void"), &w.finance.clone(), json!({"reason": "model"})).await;
        assert_eq!(status, 200, "{v:#}");
        w.log.push("  voided".into());
        return;
    }
    let (status, _) = w.post(&format!("{path}/submit"), &w.finance.clone(), json!({})).await;
    assert_eq!(status, 200);
    w.m.claimed += expected;
    let lines: Vec<Decimal> =
        (0..2).map(|p| w.m.subsidy_earned(p) - w.m.claims.iter().map(|c| c.lines[p]).sum::<Decimal>()).collect();
    w.m.claims.push(Claim { lines, amount: expected, paid: Decimal::ZERO, written_off: Decimal::ZERO });
    if expected > Decimal::ZERO && rng.random_bool(0.8) {
        let amount = Decimal::from(rng.random_range(1..=expected.to_i64().unwrap_or(1)));
        let body = json!({"amount": amount.to_string(), "reference": format!("MSIT-{}", uuid::Uuid::now_v7())});
        let (status, v) = w.post(&format!("{path}/payments"), &w.finance.clone(), body).await;
        assert_eq!(status, 201, "{v:#}");
        w.m.claim_paid += amount;
        if let Some(c) = w.m.claims.last_mut() {
            c.paid += amount;
        }
        let open = expected - amount;
        if open > Decimal::ZERO && rng.random_bool(0.5) {
            let off = Decimal::from(rng.random_range(1..=open.to_i64().unwrap_or(1)));
            let body = json!({"amount": off.to_string(), "reason": "disallowed"});
            let (status, v) = w.post(&format!("{path}/write-offs"), &w.finance.clone(), body).await;
            assert_eq!(status, 201, "{v:#}");
            if let Some(c) = w.m.claims.last_mut() {
                c.written_off += off;
            }
            w.log.push(format!("  wrote off {off}"));
        }
        w.log.push(format!("  paid {amount}"));
    }
}

async fn close_or_withdraw(w: &mut World, rng: &mut StdRng, seed: u64) {
    if w.m.grants.is_empty() {
        return;
    }
    let g = rng.random_range(0..w.m.grants.len());
    let id = w.m.grants[g].id.clone();
    let left = w.m.grant_left(g);
    if rng.random_bool(0.5) && left > Decimal::ONE && !w.m.grants[g].closed {
        let amount = Decimal::from(rng.random_range(1..=left.to_i64().unwrap_or(1)));
        let (status, v) = w
            .post(
                &format!("/v1/grants/{id}/withdrawals"),
                &w.finance.clone(),
                json!({"amount": amount.to_string(), "reason": "model"}),
            )
            .await;
        w.log.push(format!("withdraw {amount} of grant {g} (left {left}): {status}"));
        if status != 201 {
            w.fail(seed, format!("withdrawal answered {status}: {v:#}"));
        }
        w.m.grants[g].released += amount;
    } else {
        let (status, v) = w.post(&format!("/v1/grants/{id}/close"), &w.finance.clone(), json!({})).await;
        w.log.push(format!("close grant {g} (left {left}): {status}"));
        assert_eq!(status, 200, "{v:#}");
        w.m.grants[g].released += left.max(Decimal::ZERO);
        w.m.grants[g].closed = true;
    }
}

async fn credit_note(w: &mut World, rng: &mut StdRng, seed: u64) {
    let funded: Vec<usize> = (0..w.m.grants.len()).filter(|&g| w.m.grant_used(g).0 > Decimal::ZERO).collect();
    if funded.is_empty() {
        return;
    }
    let g = funded[rng.random_range(0..funded.len())];
    let spent = w.m.grant_used(g).0;
    let provider = rng.random_range(0..2);
    let over = rng.random_bool(0.15);
    let amount =
        if over { spent + Decimal::ONE } else { Decimal::from(rng.random_range(1..=spent.to_i64().unwrap_or(1))) };
    let body = json!({"grant_id": w.m.grants[g].id, "provider_org_id": w.providers[provider].org_id,
        "amount": amount.to_string(), "reason": "model goodwill"});
    let path = format!("/v1/programmes/{}/credit-notes", w.programme["id"].as_str().expect("id"));
    let payable_before = w.m.payable(provider);
    let (status, v) = w.post(&path, &w.finance.clone(), body).await;
    w.log.push(format!("credit note {amount} for grant {g} (spent {spent}) from provider {provider}: {status}"));
    let expected = if over { 422 } else { 201 };
    if status != expected {
        w.fail(seed, format!("credit note answered {status}, model {expected}: {v:#}"));
    }
    if status == 201 {
        w.m.credit_notes.push(CreditNote { grant: g, provider, amount });
        if w.m.grants[g].closed {
            w.m.grants[g].released += amount;
        }
        let owed_after = (-(payable_before - amount)).max(Decimal::ZERO);
        w.m.owed[provider] += (owed_after - (-payable_before).max(Decimal::ZERO)).max(Decimal::ZERO);
    }
}

async fn adjust_and_maybe_reverse(w: &mut World, rng: &mut StdRng) {
    let amount = Decimal::from(rng.random_range(1..=500));
    let body = json!({"memo": "model: bank fee correction", "currency": "KRW", "postings": [
        {"debit_account": "assets:bank", "credit_account": "equity:adjustments", "amount": amount.to_string()}]});
    let (status, e) = w.post("/v1/journal-entries", &w.finance.clone(), body).await;
    assert_eq!(status, 201, "{e:#}");
    w.m.adjustments += amount;
    w.log.push(format!("adjustment bank +{amount}"));
    if rng.random_bool(0.5) {
        let path = format!("/v1/journal-entries/{}/reverse", e["id"].as_str().expect("id"));
        let (status, r) = w.post(&path, &w.finance.clone(), json!({"memo": "model: entered by mistake"})).await;
        assert_eq!(status, 201, "{r:#}");
        w.m.adjustments -= amount;
        w.log.push("  reversed".into());
    }
}

async fn run(seed: u64, steps: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut w = world(seed, &mut rng).await;
    for _ in 0..3 {
        deposit(&mut w, &mut rng).await;
    }
    grant(&mut w, &mut rng).await;
    for _ in 0..steps {
        match rng.random_range(0..100) {
            0..=7 => deposit(&mut w, &mut rng).await,
            8..=12 => grant(&mut w, &mut rng).await,
            13..=42 => order(&mut w, &mut rng, seed).await,
            43..=60 => advance(&mut w, &mut rng).await,
            61..=70 => cancel(&mut w, &mut rng, seed).await,
            71..=80 => outage(&mut w, &mut rng).await,
            81..=87 => payout(&mut w, &mut rng, seed).await,
            88..=93 => claim(&mut w, &mut rng, seed).await,
            94..=95 => close_or_withdraw(&mut w, &mut rng, seed).await,
            96 => credit_note(&mut w, &mut rng, seed).await,
            _ => adjust_and_maybe_reverse(&mut w, &mut rng).await,
        }
        w.check(seed).await;
    }
    // The funding report agrees with the ledger at the end of every sequence.
    let funding = w.get("/v1/reports/funding/reconciliation").await;
    if funding["ok"] != true {
        w.fail(seed, format!("funding reconciliation: {funding:#}"));
    }
    if std::env::var("GPUHOUR_MODEL_VERBOSE").is_ok() {
        println!("seed {seed}:\n  {}", w.log.join("\n  "));
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Random sequences; `GPUHOUR_MODEL_SEED` replays one, `GPUHOUR_MODEL_SEQUENCES`
/// and `GPUHOUR_MODEL_STEPS` make the run longer.
#[tokio::test]
async fn random_sequences_agree_with_the_model() {
    let steps = env_number("GPUHOUR_MODEL_STEPS", 30) as usize;
    if let Ok(seed) = std::env::var("GPUHOUR_MODEL_SEED") {
        run(seed.parse().expect("GPUHOUR_MODEL_SEED is a number"), steps).await;
        return;
    }
    let sequences = env_number("GPUHOUR_MODEL_SEQUENCES", 200);
    let base = env_number("GPUHOUR_MODEL_BASE", 1);
    // Four at a time: each sequence has a database of its own.
    for pair in (base..base + sequences).collect::<Vec<_>>().chunks(4) {
        futures::future::join_all(pair.iter().map(|&seed| run(seed, steps))).await;
    }
}

/// The sequence the reliability review found by hand (issue 8, defect 1): an
/// order credited for its first hour and cancelled during it.
#[tokio::test]
async fn regression_outage_then_cancel_within_the_credited_hour() {
    let seed = 0;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut w = world(seed, &mut rng).await;
    w.m.deposits[0] = Decimal::from(100_000);
    let body =
        json!({"tenant_org_id": w.tenants[0].org_id, "amount": "100000", "currency": "KRW", "reference": "wire-0"});
    assert_eq!(w.post("/v1/deposits", &w.finance.clone(), body).await.0, 201);
    // Order on the first listing, every GPU of it, 10 hours, half paid by a grant.
    let l = w.m.listings[0].clone();
    let start = hour_after(w.clock);
    let body = json!({"tenant_org_id": w.tenants[0].org_id, "amount": "100000", "rate": "0.5",
        "valid_from": w.clock - Duration::days(1), "valid_until": w.clock + Duration::days(300)});
    let path = format!("/v1/programmes/{}/grants", w.programme["id"].as_str().expect("id"));
    let (_, g) = w.post(&path, &w.finance.clone(), body).await;
    w.m.grants.push(Grant {
        id: g["id"].as_str().expect("id").into(),
        tenant: 0,
        amount: Decimal::from(100_000),
        rate: Decimal::new(5, 1),
        released: Decimal::ZERO,
        closed: false,
    });
    let grant_index = w.m.grants.len() - 1;
    let order_body = json!({"listing_id": l.id, "gpus": l.gpus, "start": start, "end": start + Duration::hours(10), "grant_id": g["id"]});
    let (status, v) = w.post("/v1/orders", &w.tenants[0].token.clone(), order_body).await;
    assert_eq!(status, 201, "{v:#}");
    let subtotal = round_half_up0(l.price * Decimal::from(l.gpus * 10));
    let subsidy = floor0(subtotal * Decimal::new(5, 1));
    w.m.orders.push(Order {
        id: v["id"].as_str().expect("id").into(),
        tenant: 0,
        listing: 0,
        grant: Some(grant_index),
        gpus: l.gpus,
        hours: 10,
        start,
        tenant_amount: subtotal - subsidy,
        subsidy,
        fee: round_half_up0(subtotal * w.m.fee_rate),
        settled: 0,
        charged: 10,
        cancelled: false,
        credits: BTreeMap::new(),
    });
    for h in 0..10 {
        *w.m.listings[0].reserved.entry(start + Duration::hours(h)).or_default() += l.gpus;
    }
    w.set_clock(start + Duration::minutes(30)).await;
    let body = json!({"start": start, "end": start + Duration::hours(1), "gpus": l.gpus});
    let (status, _) = w.post(&format!("/v1/listings/{}/outages", l.id), &w.providers[0].token.clone(), body).await;
    assert_eq!(status, 201);
    w.m.orders[0].credits.insert(0, l.gpus);
    w.check(seed).await;
    let (status, _) =
        w.post(&format!("/v1/orders/{}/cancel", w.m.orders[0].id), &w.tenants[0].token.clone(), json!({})).await;
    assert_eq!(status, 200);
    let o = &mut w.m.orders[0];
    (o.cancelled, o.charged, o.settled) = (true, 1, 1);
    w.check(seed).await;
    // Nothing was charged for the lost hour.
    assert_eq!(w.m.wallet(0), (Decimal::from(100_000), Decimal::ZERO));
}
