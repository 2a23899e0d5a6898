//! Request extractors that turn every malformed input into a precise problem:
//! JSON bodies and query strings are parsed with the path of the offending field.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::FutureExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::problem::{ApiError, FieldError};

/// A JSON body, parsed strictly, with its raw bytes kept for idempotency.
pub struct JsonBody<T> {
    pub value: T,
    pub raw: web::Bytes,
}

/// The path of the first JSON string (or key) holding a NUL character, if any.
/// PostgreSQL's text cannot hold NUL, so it is refused where input is parsed.
pub fn nul_in_json(bytes: &[u8]) -> Option<String> {
    let lower = bytes.to_ascii_lowercase();
    let escaped = lower.windows(6).any(|w| w == b"\\u0000");
    if !escaped && !bytes.contains(&0) {
        return None;
    }
    fn walk(value: &serde_json::Value, path: &str) -> Option<String> {
        match value {
            serde_json::Value::String(s) if s.contains('\0') => Some(path.to_string()),
            serde_json::Value::Array(items) => {
                items.iter().enumerate().find_map(|(i, v)| walk(v, &format!("{path}[{i}]")))
            }
            serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
                let here = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                if k.contains('\0') { Some(here) } else { walk(v, &here) }
            }),
            _ => None,
        }
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    walk(&value, "").map(|p| if p.is_empty() { "body".to_string() } else { p })
}

fn nul_refused(field: String) -> ApiError {
    ApiError::validation(vec![FieldError::new(field, "must not contain a NUL character")])
}

/// Parses `bytes` as JSON into `T`, naming the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Some(field) = nul_in_json(bytes) {
        return Err(nul_refused(field));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        json_error(path, inner)
    })?;
    de.end().map_err(|e| json_error(".".into(), e))?;
    Ok(value)
}

fn json_error(path: String, e: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => {
            let field = if path == "." { "body".to_string() } else { path };
            ApiError::validation(vec![FieldError::new(field, strip_position(&e.to_string()))])
        }
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::bad_request(crate::http::ProblemCode::MalformedJson, format!("the body is not valid JSON: {e}"))
        }
    }
}

/// serde_json appends " at line 1 column 42"; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .is_some_and(|m| m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON));
        let body = read_body(req, payload, is_json, "send the body with Content-Type: application/json");
        Box::pin(async move {
            let raw = body.await?;
            let value = parse_json(&raw)?;
            Ok(JsonBody { value, raw })
        })
    }
}

/// A `text/csv` body (a bank statement), kept as bytes for the importer to parse.
pub struct CsvBody(pub web::Bytes);

impl FromRequest for CsvBody {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_csv = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/csv"));
        Box::pin(read_body(req, payload, is_csv, "send the statement as text/csv").map(|body| body.map(CsvBody)))
    }
}

/// Reads a body whose media type the caller has judged (`accepted`): a 415
/// saying `hint` otherwise, a 413 when it is too large.
fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
    accepted: bool,
    hint: &'static str,
) -> impl std::future::Future<Output = Result<web::Bytes, ApiError>> + 'static {
    let body = web::Bytes::from_request(req, payload);
    async move {
        if !accepted {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                crate::http::ProblemCode::UnsupportedMediaType,
                hint,
            ));
        }
        body.await.map_err(unreadable_body)
    }
}

fn unreadable_body(e: actix_web::Error) -> ApiError {
    if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            crate::http::ProblemCode::PayloadTooLarge,
            "the request body is too large",
        )
    } else {
        ApiError::bad_request(crate::http::ProblemCode::BadRequest, format!("the request body could not be read: {e}"))
    }
}

/// Query parameters, parsed with the name of the offending parameter.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let query = req.query_string().as_bytes();
        if let Some((name, _)) = form_urlencoded::parse(query).find(|(k, v)| k.contains('\0') || v.contains('\0')) {
            return std::future::ready(Err(nul_refused(name.replace('\0', "\\0"))));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query));
        std::future::ready(serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let field = e.path().to_string();
            let field = if field == "." { "query".to_string() } else { field };
            ApiError::validation(vec![FieldError::new(field, e.into_inner().to_string())])
        }))
    }
}

/// The query string of a route that takes no parameters: a parameter is
/// refused (422 naming it), never silently ignored — `?as_of=` on a route
/// without it must not look as if it had been honoured.
pub struct NoQuery;

impl FromRequest for NoQuery {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let first = form_urlencoded::parse(req.query_string().as_bytes()).next();
        std::future::ready(match first {
            None => Ok(NoQuery),
            Some((name, _)) => Err(ApiError::invalid(name.into_owned(), "this route takes no query parameters")),
        })
    }
}

/// Checks a period `[from, to)` given as query parameters: `from` after `to`
/// is a 422 naming `from`, not an empty answer that looks like "nothing
/// happened". `from == to` is a valid, empty period.
pub fn check_period(
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<(), ApiError> {
    if crate::clock::is_backwards(from, to) {
        return Err(ApiError::invalid("from", "must not be after `to`"));
    }
    Ok(())
}

/// A path parameter that must be a UUID.
pub fn parse_uuid(field: &str, raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| ApiError::invalid(field, format!("{raw:?} is not a valid UUID")))
}

/// The one answer to a path that does not parse (handlers take
/// `web::Path<Uuid>`; `startup` configures this for every route): 422
/// `validation_failed` naming the segment that is not a UUID, as
/// [`parse_uuid`] does. A well-formed id that names nothing is the
/// handler's 404.
pub fn path_error(error: actix_web::error::PathError, req: &HttpRequest) -> actix_web::Error {
    let problem = req
        .match_info()
        .iter()
        .find_map(|(field, raw)| parse_uuid(field, raw).err())
        .unwrap_or_else(|| ApiError::invalid("path", error.to_string()));
    problem.into()
}

/// [`path_error`] as the app's `PathConfig`.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(path_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        memo: String,
        lines: Vec<Line>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Line {
        amount: String,
    }

    #[test]
    fn names_the_field_at_fault() {
        let e = parse_json::<Body>(br#"{"memo": "x", "lines": [{"amount": 5}]}"#).expect_err("number, not string");
        assert_eq!(e.code, crate::http::ProblemCode::ValidationFailed);
        assert_eq!(e.errors[0].field, "lines[0].amount");
        let e = parse_json::<Body>(br#"{"memo": "x", "lines": [], "extra": 1}"#).expect_err("unknown field");
        assert_eq!(e.errors[0].field, "extra");
        let e = parse_json::<Body>(br#"{"lines": []}"#).expect_err("missing field");
        assert_eq!(e.errors[0].message, "missing field `memo`");
    }

    #[test]
    fn a_period_must_not_end_before_it_starts() {
        use chrono::{TimeZone, Utc};
        let t = |h| Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).single().expect("time");
        let e = check_period(Some(t(2)), Some(t(1))).expect_err("backwards");
        assert_eq!((e.status.as_u16(), e.errors[0].field.as_str()), (422, "from"));
        assert!(check_period(Some(t(1)), Some(t(1))).is_ok(), "empty, not backwards");
        assert!(check_period(Some(t(1)), Some(t(2))).is_ok());
        assert!(check_period(None, Some(t(1))).is_ok() && check_period(Some(t(1)), None).is_ok());
    }

    #[test]
    fn a_nul_character_is_refused_naming_the_field() {
        let e = parse_json::<Body>(br#"{"memo": "a\u0000b", "lines": []}"#).expect_err("nul");
        assert_eq!((e.status.as_u16(), e.errors[0].field.as_str()), (422, "memo"));
        let e = parse_json::<Body>(br#"{"memo": "x", "lines": [{"amount": "1\u0000"}]}"#).expect_err("nul");
        assert_eq!(e.errors[0].field, "lines[0].amount");
        assert_eq!(
            nul_in_json(br#"{"memo": "no nul here \\u0000 is text"}"#),
            None,
            "an escaped backslash is not a NUL"
        );
        assert_eq!(nul_in_json(br#"{"memo": "fine"}"#), None);
    }

    #[test]
    fn malformed_json_is_a_400() {
        for body in [&b"{"[..], b"not json", b"", br#"{"memo": "x", "lines": []} trailing"#] {
            let e = parse_json::<Body>(body).expect_err("malformed");
            assert_eq!(
                (e.status.as_u16(), e.code.as_str()),
                (400, "malformed_json"),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
