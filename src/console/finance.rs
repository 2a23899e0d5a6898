//! What the finance pages (programmes, claims, ledger, audit) share: the role
//! check, reading a write's answer, form values, and the small pure rules the
//! dashboard is built from.

use std::collections::BTreeMap;

use actix_web::HttpResponse;
use maud::{Markup, html};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;

use super::error::ConsoleError;
use super::i18n::Lang;
use super::session::Viewer;
use crate::finance::reports::ReportGroup;
use crate::http::ApiError;

/// Finance staff and administrators, as the API's finance routes allow.
pub fn finance_only(viewer: &Viewer) -> Result<(), ConsoleError> {
    viewer.principal.require_finance().map_err(|e| ConsoleError::api(viewer.lang, e))
}

/// The JSON a write answered (the API's own answer, stored with its
/// idempotency key), as the view it is.
pub async fn answer<T: DeserializeOwned>(
    lang: Lang,
    outcome: Result<HttpResponse, ApiError>,
) -> Result<T, ConsoleError> {
    let response = outcome.map_err(|e| ConsoleError::api(lang, e))?;
    let body = actix_web::body::to_bytes(response.into_body()).await.map_err(|e| ConsoleError::internal(lang, e))?;
    serde_json::from_slice(&body).map_err(|e| ConsoleError::internal(lang, e))
}

/// A form's idempotency key: what the page generated, if it is one.
pub fn form_key(raw: &str) -> Option<String> {
    Some(raw.trim().to_string()).filter(|k| !k.is_empty() && k.len() <= 255)
}

/// A field left empty is a field not given.
pub fn given(raw: &str) -> Option<&str> {
    Some(raw.trim()).filter(|v| !v.is_empty())
}

/// A form field that did not parse: 422, the field named.
pub fn invalid(lang: Lang, field: &str, why: &str) -> ConsoleError {
    ConsoleError::api(lang, ApiError::invalid(field.to_string(), why.to_string()))
}

/// A fresh idempotency key for a form rendered now: a second submit of the
/// same form (a double click, a refresh) carries it again and writes nothing more.
pub fn new_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The hidden fields every finance form carries.
pub fn form_tokens(viewer: &Viewer) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(viewer.csrf);
        input type="hidden" name="idempotency_key" value=(new_key());
    }
}

/// Spent and committed per tenant category, from the report's groups by
/// tenant (each carries its organisation and category): the same figures,
/// summed exactly. Tenants without a category are `None`.
pub fn by_category(groups: &[ReportGroup]) -> Option<BTreeMap<Option<String>, (Decimal, Decimal)>> {
    let mut out: BTreeMap<Option<String>, (Decimal, Decimal)> = BTreeMap::new();
    for g in groups {
        let category = g.org.as_ref().and_then(|o| o.category.clone());
        let committed = g.committed.parse::<Decimal>().ok()?;
        let spent = g.spent.parse::<Decimal>().ok()?;
        let entry = out.entry(category).or_default();
        entry.0 = entry.0.checked_add(committed)?;
        entry.1 = entry.1.checked_add(spent)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finance::names::OrgRef;
    use rust_decimal_macros::dec;
    use uuid::Uuid;

    fn group(category: Option<&str>, committed: &str, spent: &str) -> ReportGroup {
        let id = Uuid::new_v4();
        ReportGroup {
            key: id.to_string(),
            name: "t".into(),
            org: Some(OrgRef { id, name: "t".into(), category: category.map(String::from) }),
            committed: committed.into(),
            spent: spent.into(),
        }
    }

    #[test]
    fn categories_sum_their_tenants_exactly() {
        let groups = [
            group(Some("sme"), "100", "5603"),
            group(Some("university"), "0", "0.5"),
            group(Some("sme"), "1", "1"),
            group(None, "2", "3"),
        ];
        let sums = by_category(&groups).expect("sums");
        assert_eq!(sums.get(&Some("sme".to_string())), Some(&(dec!(101), dec!(5604))));
        assert_eq!(sums.get(&Some("university".to_string())), Some(&(dec!(0), dec!(0.5))));
        assert_eq!(sums.get(&None), Some(&(dec!(2), dec!(3))));
        assert_eq!(by_category(&[group(Some("sme"), "x", "1")]), None);
    }

    #[test]
    fn keys_are_kept_only_when_they_can_be() {
        assert_eq!(form_key(" abc "), Some("abc".into()));
        assert_eq!(form_key(""), None);
        assert_eq!(form_key(&"k".repeat(256)), None);
        assert_eq!(given("  "), None);
        assert_eq!(given(" 2026-11 "), Some("2026-11"));
    }
}
