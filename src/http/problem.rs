//! RFC 9457 problem details: the one shape of every error gpuhour answers with.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::login::{LoginError, TooMany};
use crate::auth::principal::AuthError;
use crate::db::{DbPoolError, is_unavailable};
use crate::ledger::LedgerError;
use crate::market::orders::OrderError;
use crate::market::settlement::SettleError;
use crate::subsidy::claims::ClaimError;
use crate::subsidy::corrections::CorrectionError;
use crate::subsidy::programmes::GrantError;
use crate::subsidy::projects::AllocationError;
use crate::subsidy::year_end::YearEndError;

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Path of the field in the request (`postings[0].amount`, `limit`).
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:gpuhour:problem:{code}`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code (SPEC section 7).
    pub code: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// The stable machine-readable codes of SPEC section 7, each with the title
/// every answer with that code carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemCode {
    ValidationFailed,
    MalformedJson,
    BadRequest,
    UnsupportedMediaType,
    PayloadTooLarge,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    InsufficientFunds,
    CapacityUnavailable,
    BudgetExhausted,
    IdempotencyKeyReused,
    Conflict,
    DuplicateReference,
    PeriodClosed,
    TooManyRequests,
    ServiceUnavailable,
    /// The service is shutting down (the order batcher has stopped).
    ShuttingDown,
    Timeout,
    InternalError,
}

impl ProblemCode {
    pub const fn as_str(self) -> &'static str {
        use ProblemCode::*;
        match self {
            ValidationFailed => "validation_failed",
            MalformedJson => "malformed_json",
            BadRequest => "bad_request",
            UnsupportedMediaType => "unsupported_media_type",
            PayloadTooLarge => "payload_too_large",
            Unauthorized => "unauthorized",
            Forbidden => "forbidden",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            InsufficientFunds => "insufficient_funds",
            CapacityUnavailable => "capacity_unavailable",
            BudgetExhausted => "budget_exhausted",
            IdempotencyKeyReused => "idempotency_key_reused",
            Conflict => "conflict",
            DuplicateReference => "duplicate_reference",
            PeriodClosed => "period_closed",
            TooManyRequests => "too_many_requests",
            ServiceUnavailable => "service_unavailable",
            ShuttingDown => "unavailable",
            Timeout => "timeout",
            InternalError => "internal_error",
        }
    }

    pub const fn title(self) -> &'static str {
        use ProblemCode::*;
        match self {
            ValidationFailed => "Your request is not valid",
            MalformedJson => "The request body is not valid JSON",
            BadRequest => "The request could not be read",
            UnsupportedMediaType => "Send the body as application/json",
            PayloadTooLarge => "The request body is too large",
            Unauthorized => "Authentication is required",
            Forbidden => "You may not do this",
            NotFound => "Not found",
            MethodNotAllowed => "Method not allowed",
            InsufficientFunds => "Insufficient funds",
            CapacityUnavailable => "Capacity unavailable",
            BudgetExhausted => "Budget exhausted",
            IdempotencyKeyReused => "Idempotency key reused with another request",
            Conflict => "Conflict",
            DuplicateReference => "Reference already recorded",
            PeriodClosed => "The accounting period is closed",
            TooManyRequests => "Too many requests",
            ServiceUnavailable | ShuttingDown => "Service unavailable",
            Timeout => "The database timed out",
            InternalError => "Internal server error",
        }
    }
}

impl fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error on its way to becoming a problem+json response. Unexpected causes
/// are logged with their whole chain and never shown to the caller.
pub struct ApiError {
    pub status: StatusCode,
    pub code: ProblemCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Seconds after which a retry may succeed: sent as `Retry-After`.
    pub retry_after: Option<u64>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ProblemCode, detail: impl Into<String>) -> Self {
        ApiError { status, code, detail: detail.into(), errors: Vec::new(), retry_after: None, source: None }
    }

    /// Tells the caller, with `Retry-After`, when the request may succeed.
    pub fn with_retry_after(self, seconds: u64) -> Self {
        ApiError { retry_after: Some(seconds), ..self }
    }

    pub fn bad_request(code: ProblemCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 422 `validation_failed` listing every invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => format!("{} fields are invalid", errors.len()),
        };
        ApiError { errors, ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, ProblemCode::ValidationFailed, detail) }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ProblemCode::NotFound, detail)
    }

    /// 404 for a `what` (`"claim"`) with this id that does not exist — or
    /// that the caller may not see, which answers the same.
    pub fn missing(what: &str, id: impl fmt::Display) -> Self {
        Self::not_found(format!("{what} {id} does not exist"))
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ProblemCode::Unauthorized, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ProblemCode::Forbidden, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, ProblemCode::Conflict, detail)
    }

    pub fn unavailable(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError {
            source: Some(Box::new(source)),
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ProblemCode::ServiceUnavailable,
                "the database is unavailable; retry later",
            )
        }
    }

    /// The same answer for another client; the source, logged with the
    /// original, stays behind.
    pub fn clone_public(&self) -> Self {
        ApiError {
            status: self.status,
            code: self.code,
            detail: self.detail.clone(),
            errors: self.errors.clone(),
            retry_after: self.retry_after,
            source: None,
        }
    }

    pub fn internal(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError {
            source: Some(Box::new(source)),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ProblemCode::InternalError,
                "an unexpected error occurred; it has been logged",
            )
        }
    }

    pub fn title(&self) -> &'static str {
        self.code.title()
    }

    pub fn problem(&self) -> Problem {
        Problem {
            problem_type: format!("urn:gpuhour:problem:{}", self.code.as_str()),
            title: self.title().to_string(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.as_str().to_string(),
            errors: self.errors.clone(),
        }
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)?;
        let mut cause: Option<&(dyn std::error::Error + 'static)> =
            self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(e) = cause {
            write!(f, "\n  caused by: {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if self.status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
        }
        let body = serde_json::to_string(&self.problem()).unwrap_or_else(|_| String::from("{}"));
        let mut response = HttpResponse::build(self.status);
        response.insert_header(ContentType(mime_problem()));
        if let Some(seconds) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, seconds.to_string()));
        }
        response.body(body)
    }
}

pub fn mime_problem() -> mime::Mime {
    "application/problem+json".parse().unwrap_or(mime::APPLICATION_JSON)
}

/// Whether a database error is a session limit firing (`statement_timeout`,
/// `lock_timeout`): the request waited too long, the service is fine.
pub fn is_timeout(e: &diesel::result::Error) -> bool {
    match e {
        diesel::result::Error::DatabaseError(_, info) => {
            let m = info.message();
            // 57014 (statement or lock timeout, a cancelled query), 55P03, 25P03.
            m.starts_with("canceling statement due to")
                || m.starts_with("could not obtain lock")
                || m.starts_with("terminating connection due to idle-in-transaction timeout")
        }
        _ => false,
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        if is_timeout(&e) {
            return ApiError {
                source: Some(Box::new(e)),
                retry_after: Some(1),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ProblemCode::Timeout,
                    "the request waited too long for the database (a lock or a slow statement); nothing was written — retry it",
                )
            };
        }
        match &e {
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => ApiError::unavailable(e),
            Error::DatabaseError(DatabaseErrorKind::UnableToSendCommand, _) => ApiError::unavailable(e),
            _ => ApiError::internal(e),
        }
    }
}

impl From<DbPoolError> for ApiError {
    fn from(e: DbPoolError) -> Self {
        if is_unavailable(&e) { ApiError::unavailable(e) } else { ApiError::internal(e) }
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        use LedgerError::*;
        match e {
            EmptyEntry
            | NonPositiveAmount
            | SameAccount(_)
            | UnknownAccount(_)
            | CurrencyMismatch { .. }
            | TooPrecise { .. }
            | MixesMemoAndMoney { .. }
            | PendingNotFound(_)
            | Overflow => ApiError::invalid("postings", e.to_string()),
            PendingExceeded { .. } | NotReversible(_) => ApiError::conflict(e.to_string()),
            FloorBroken { ref code, .. } if code.starts_with("budget:") => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, ProblemCode::BudgetExhausted, e.to_string())
            }
            FloorBroken { .. } => {
                ApiError::new(StatusCode::PAYMENT_REQUIRED, ProblemCode::InsufficientFunds, e.to_string())
            }
            EntryNotFound(id) => ApiError::missing("journal entry", id),
            PeriodClosed => ApiError::new(StatusCode::CONFLICT, ProblemCode::PeriodClosed, e.to_string()),
            Corrupt(_) => ApiError::internal(e),
            Database(db) => ApiError::from(db.0),
        }
    }
}

// The domain's errors, answered. Each domain area says what went wrong; only
// here is it decided which status, code and title the caller sees.

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> Self {
        match e {
            OrderError::Invalid(fields) => ApiError::validation(fields),
            OrderError::ListingNotFound(_) => ApiError::not_found(e.to_string()),
            OrderError::ListingClosed(_) => ApiError::conflict(e.to_string()),
            OrderError::MoreGpusThanListed(_) | OrderError::CapacityUnavailable => {
                ApiError::new(StatusCode::CONFLICT, ProblemCode::CapacityUnavailable, e.to_string())
            }
            OrderError::Grant(grant) => ApiError::from(grant),
            OrderError::Allocation(allocation) => ApiError::from(allocation),
            OrderError::Ledger(ledger) => ApiError::from(ledger),
            OrderError::Database(db) => ApiError::from(db),
        }
    }
}

impl From<SettleError> for ApiError {
    fn from(e: SettleError) -> Self {
        match e {
            SettleError::OrderNotFound(_) => ApiError::not_found(e.to_string()),
            SettleError::AlreadyEnded(_) | SettleError::NothingLeftToCancel => ApiError::conflict(e.to_string()),
            SettleError::Ledger(ledger) => ApiError::from(ledger),
            SettleError::Database(db) => ApiError::from(db),
            SettleError::Pool(pool) => ApiError::from(pool),
        }
    }
}

impl From<GrantError> for ApiError {
    fn from(e: GrantError) -> Self {
        match e {
            GrantError::ProgrammeNotFound(_) | GrantError::GrantNotFound(_) => ApiError::not_found(e.to_string()),
            GrantError::ProgrammeSettled { .. } => ApiError::conflict(e.to_string()),
            GrantError::NoSuchTenant => ApiError::invalid("tenant_org_id", e.to_string()),
            GrantError::BudgetExhausted(_) | GrantError::ShareCapExceeded { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, ProblemCode::BudgetExhausted, e.to_string())
            }
            GrantError::NotUsable(message) => ApiError::invalid("grant_id", message),
            GrantError::Invalid { field, message } => ApiError::invalid(field, message),
            GrantError::Ledger(ledger) => ApiError::from(ledger),
            GrantError::Database(db) => ApiError::from(db),
        }
    }
}

impl From<AllocationError> for ApiError {
    fn from(e: AllocationError) -> Self {
        match e {
            AllocationError::OtherModel { .. } => ApiError::invalid("grant_id", e.to_string()),
            AllocationError::Exceeded { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, ProblemCode::BudgetExhausted, e.to_string())
            }
        }
    }
}

impl From<crate::subsidy::reclaim::ReclaimError> for ApiError {
    fn from(e: crate::subsidy::reclaim::ReclaimError) -> Self {
        use crate::subsidy::reclaim::ReclaimError;
        match e {
            ReclaimError::GrantNotFound(_) => ApiError::not_found(e.to_string()),
            ReclaimError::AlreadyClosed | ReclaimError::OrderPlacedMeanwhile => ApiError::conflict(e.to_string()),
            ReclaimError::Grant(grant) => ApiError::from(grant),
            ReclaimError::Settle(settle) => ApiError::from(settle),
            ReclaimError::EventData(_) => ApiError::internal(e),
            ReclaimError::Database(db) => ApiError::from(db),
            ReclaimError::Pool(pool) => ApiError::from(pool),
        }
    }
}

impl From<ClaimError> for ApiError {
    fn from(e: ClaimError) -> Self {
        match e {
            ClaimError::ProgrammeNotFound(_) | ClaimError::ClaimNotFound(_) => ApiError::not_found(e.to_string()),
            ClaimError::NothingToClaim
            | ClaimError::NotDraft(_)
            | ClaimError::NotSubmitted
            | ClaimError::DuplicateAdvanceReference(_) => ApiError::conflict(e.to_string()),
            ClaimError::InvalidAmount(message) => ApiError::invalid("amount", message),
            ClaimError::DuplicatePaymentReference { .. } => {
                ApiError::new(StatusCode::CONFLICT, ProblemCode::DuplicateReference, e.to_string())
            }
            ClaimError::Grant(grant) => ApiError::from(grant),
            ClaimError::Ledger(ledger) => ApiError::from(ledger),
            ClaimError::Database(db) => ApiError::from(db),
        }
    }
}

impl From<CorrectionError> for ApiError {
    fn from(e: CorrectionError) -> Self {
        match e {
            CorrectionError::ProgrammeNotFound(_)
            | CorrectionError::ClaimNotFound(_)
            | CorrectionError::GrantNotFound(_) => ApiError::not_found(e.to_string()),
            CorrectionError::NotVoidable(_) | CorrectionError::NothingToWriteOff(_) => {
                ApiError::conflict(e.to_string())
            }
            CorrectionError::Invalid { field, message } => ApiError::invalid(field, message),
            CorrectionError::Grant(grant) => ApiError::from(grant),
            CorrectionError::Ledger(ledger) => ApiError::from(ledger),
            CorrectionError::Database(db) => ApiError::from(db),
        }
    }
}

impl From<YearEndError> for ApiError {
    fn from(e: YearEndError) -> Self {
        match e {
            YearEndError::ProgrammeNotFound(_) => ApiError::not_found(e.to_string()),
            YearEndError::StillRunning(_)
            | YearEndError::OrdersUnsettled(_)
            | YearEndError::NotSettled
            | YearEndError::DuplicateRefundReference(_) => ApiError::conflict(e.to_string()),
            YearEndError::InvalidAmount(message) => ApiError::invalid("amount", message),
            YearEndError::Grant(grant) => ApiError::from(grant),
            YearEndError::Claim(claim) => ApiError::from(claim),
            YearEndError::Ledger(ledger) => ApiError::from(ledger),
            YearEndError::Database(db) => ApiError::from(db),
        }
    }
}

impl From<crate::finance::FinanceError> for ApiError {
    fn from(e: crate::finance::FinanceError) -> Self {
        use crate::finance::FinanceError::*;
        match e {
            InvalidFile { .. } | InvalidCell { .. } | DuplicateBankRef { .. } => {
                ApiError::invalid("file", e.to_string())
            }
            LineNotFound(_) | OrgNotFound(_) => ApiError::not_found(e.to_string()),
            NothingSuggested | EntryNotInBank(_) | EntryInOtherCurrency { .. } | AmountsDiffer { .. } => {
                ApiError::invalid("journal_entry_ids", e.to_string())
            }
            AlreadyMatched | LineNotFree | NothingToUnmatch | NotAReceipt => ApiError::conflict(e.to_string()),
            NoSuchTenant => ApiError::invalid("tenant_org_id", e.to_string()),
            NoSuchProvider => ApiError::invalid("provider_org_id", e.to_string()),
            MoreThanPayableNow { .. } => ApiError::invalid("amount", e.to_string()),
            FromAfterTo => ApiError::invalid("from", e.to_string()),
            // Figures the service made itself that do not add up or cannot be
            // written: a bug or damaged data, never the caller's doing.
            NotAnAmount(_) | TotalOverflow | FundingFigures(_) | UnreadableDay(_) | Xlsx(_) => ApiError::internal(e),
            Ledger(ledger) => ApiError::from(ledger),
            Database(db) => ApiError::from(db),
        }
    }
}

// Authentication and login: who the caller is, and whether it may ask.

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::MissingBearer
            | AuthError::MalformedAuthorization
            | AuthError::InvalidToken(_)
            | AuthError::NotCurrent => ApiError::unauthorized(e.to_string()),
            AuthError::RoleForbidden(_) => ApiError::forbidden(e.to_string()),
            AuthError::KeysNotConfigured => ApiError::internal(e),
            AuthError::Database(db) => ApiError::from(db),
            AuthError::Pool(pool) => ApiError::from(pool),
        }
    }
}

impl From<TooMany> for ApiError {
    fn from(e: TooMany) -> Self {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, ProblemCode::TooManyRequests, e.to_string())
            .with_retry_after(e.seconds)
    }
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::WrongCredentials => ApiError::unauthorized(e.to_string()),
            LoginError::Throttled(too_many) => ApiError::from(too_many),
            LoginError::UnknownRole { .. } | LoginError::Signing(_) => ApiError::internal(e),
            LoginError::Database(db) => ApiError::from(db),
            LoginError::Pool(pool) => ApiError::from(pool),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_carry_a_stable_code_and_type() {
        let p = ApiError::invalid("amount", "must be positive").problem();
        assert_eq!(p.status, 422);
        assert_eq!(p.code, "validation_failed");
        assert_eq!(p.problem_type, "urn:gpuhour:problem:validation_failed");
        assert_eq!(p.detail, "amount: must be positive");
        assert_eq!(p.errors, vec![FieldError::new("amount", "must be positive")]);
    }

    fn answer(e: impl Into<ApiError>) -> (u16, &'static str, String) {
        let e: ApiError = e.into();
        (e.status.as_u16(), e.code.as_str(), e.detail)
    }

    #[test]
    fn codes_that_once_fell_through_have_their_own_title() {
        // Before codes were an enum, an unlisted code read "Internal server error".
        assert_eq!(ProblemCode::ShuttingDown.title(), "Service unavailable");
        assert_eq!(ProblemCode::BadRequest.title(), "The request could not be read");
        assert_eq!(ProblemCode::PeriodClosed.title(), "The accounting period is closed");
        assert_eq!(ProblemCode::ShuttingDown.as_str(), "unavailable");
        let p = ApiError::new(StatusCode::CONFLICT, ProblemCode::PeriodClosed, "closed").problem();
        assert_eq!((p.code.as_str(), p.problem_type.as_str()), ("period_closed", "urn:gpuhour:problem:period_closed"));
    }

    #[test]
    fn order_errors_are_answered_at_the_edge() {
        use crate::market::orders::OrderError;
        assert_eq!(
            answer(OrderError::CapacityUnavailable),
            (409, "capacity_unavailable", "not enough GPUs are free on this listing for every hour asked".into())
        );
        assert_eq!(
            answer(OrderError::MoreGpusThanListed(4)),
            (409, "capacity_unavailable", "the listing has 4 GPUs".into())
        );
        assert_eq!(
            answer(OrderError::ListingClosed(crate::market::listings::ListingStatus::Paused)),
            (409, "conflict", "the listing is paused and takes no orders".into())
        );
        let e: ApiError = OrderError::Invalid(vec![FieldError::new("start", "a"), FieldError::new("gpus", "b")]).into();
        assert_eq!((e.status.as_u16(), e.code, e.errors.len()), (422, ProblemCode::ValidationFailed, 2));
        let corrupt = OrderError::Ledger(LedgerError::Corrupt("listing x has an invalid currency".into()));
        assert_eq!(answer(corrupt).0, 500);
    }

    #[test]
    fn refusals_of_the_order_batch_are_answered_at_the_edge() {
        use crate::market::orders::OrderError;
        use crate::subsidy::programmes::GrantError;
        use crate::subsidy::projects::AllocationError;
        use diesel::result::{DatabaseErrorKind, Error};
        let id = uuid::Uuid::nil();
        assert_eq!(answer(OrderError::ListingNotFound(id)), (404, "not_found", format!("listing {id} does not exist")));
        let e: ApiError = OrderError::Grant(GrantError::NotUsable("the grant is closed".into())).into();
        assert_eq!(
            (e.status.as_u16(), e.code, e.errors),
            (422, ProblemCode::ValidationFailed, vec![FieldError::new("grant_id", "the grant is closed")])
        );
        let exceeded = AllocationError::Exceeded { gpu_model: "H100".into(), left: 60, needed: 64 };
        assert_eq!(
            answer(OrderError::Allocation(exceeded)),
            (
                422,
                "budget_exhausted",
                "the grant's allocation of H100 has 60 GPU-hours left; this order needs 64".into()
            )
        );
        let other_model = AllocationError::OtherModel { allocated: "H100".into(), asked: "A100".into() };
        let e: ApiError = OrderError::Allocation(other_model).into();
        assert_eq!(
            (e.status.as_u16(), e.code, e.errors[0].field.as_str()),
            (422, ProblemCode::ValidationFailed, "grant_id")
        );
        let hidden = "an unexpected error occurred; it has been logged".to_string();
        assert_eq!(answer(OrderError::Database(Error::NotFound)), (500, "internal_error", hidden.clone()));
        let lost = Error::DatabaseError(DatabaseErrorKind::ClosedConnection, Box::new(String::from("server closed")));
        assert_eq!(answer(OrderError::Database(lost)).1, "service_unavailable");
        let unlocked = OrderError::Ledger(LedgerError::Corrupt("hour h of listing l was not locked".into()));
        assert_eq!(answer(unlocked), (500, "internal_error", hidden));
    }

    #[test]
    fn grant_refusals_of_caps_and_projects_are_answered_at_the_edge() {
        use crate::subsidy::programmes::GrantError;
        use crate::subsidy::projects::ShareExceeded;
        use rust_decimal_macros::dec;
        let share =
            ShareExceeded { max_share_per_org: dec!(0.1), cap: dec!(100000.0), held: dec!(60000), asked: dec!(50000) };
        assert_eq!(
            answer(GrantError::ShareCapExceeded { share, currency: crate::money::Currency::Krw }),
            (
                422,
                "budget_exhausted",
                "max_share_per_org 0.1 caps one organisation at 100000 of this programme; it holds 60000 and this grant asks 50000"
                    .into()
            )
        );
        let e: ApiError = GrantError::Invalid { field: "project", message: "describe it the same way".into() }.into();
        assert_eq!(
            (e.status.as_u16(), e.code, e.detail.as_str(), e.errors[0].field.as_str()),
            (422, ProblemCode::ValidationFailed, "project: describe it the same way", "project")
        );
    }

    #[test]
    fn subsidy_errors_are_answered_at_the_edge() {
        use crate::subsidy::claims::ClaimError;
        use crate::subsidy::programmes::GrantError;
        let id = uuid::Uuid::nil();
        assert_eq!(
            answer(GrantError::BudgetExhausted("5000".into())),
            (422, "budget_exhausted", "the programme has 5000 left to grant".into())
        );
        let e: ApiError = GrantError::NotUsable("the grant is closed".into()).into();
        assert_eq!((e.status.as_u16(), e.errors[0].field.as_str()), (422, "grant_id"));
        assert_eq!(answer(GrantError::GrantNotFound(id)).0, 404);
        assert_eq!(
            answer(ClaimError::NothingToClaim),
            (409, "conflict", "no unclaimed settled subsidy in this period".into())
        );
        let duplicate = ClaimError::DuplicatePaymentReference { reference: "TX-1".into(), payment: id, claim: id };
        assert_eq!(answer(duplicate).1, "duplicate_reference");
        assert_eq!(answer(ClaimError::Grant(GrantError::ProgrammeNotFound(id))).0, 404);
    }

    #[test]
    fn auth_errors_are_answered_at_the_edge() {
        use crate::auth::Role;
        use jsonwebtoken::errors::ErrorKind;
        let unauthorized = |detail: &str| (401, "unauthorized", detail.to_string());
        assert_eq!(answer(AuthError::MissingBearer), unauthorized("send Authorization: Bearer <token>"));
        assert_eq!(
            answer(AuthError::MalformedAuthorization),
            unauthorized("the Authorization header must be: Bearer <token>")
        );
        let refused = |kind: ErrorKind| answer(AuthError::InvalidToken(kind.into()));
        assert_eq!(refused(ErrorKind::ExpiredSignature), unauthorized("the token has expired"));
        assert_eq!(refused(ErrorKind::InvalidSignature), unauthorized("the token's signature is invalid"));
        assert_eq!(refused(ErrorKind::InvalidAlgorithm), unauthorized("the token's algorithm is not accepted"));
        assert_eq!(refused(ErrorKind::InvalidAlgorithmName), unauthorized("the token's algorithm is not accepted"));
        assert_eq!(refused(ErrorKind::InvalidIssuer), unauthorized("the token was not issued for this service"));
        assert_eq!(refused(ErrorKind::InvalidAudience), unauthorized("the token was not issued for this service"));
        assert_eq!(refused(ErrorKind::InvalidToken), unauthorized("the token is invalid"));
        assert_eq!(answer(AuthError::NotCurrent), unauthorized("the token's user does not exist or is disabled"));
        assert_eq!(
            answer(AuthError::RoleForbidden(Role::Tenant)),
            (403, "forbidden", "the tenant role may not do this".into())
        );
        let e: ApiError = AuthError::KeysNotConfigured.into();
        assert_eq!((e.status.as_u16(), e.code), (500, ProblemCode::InternalError));
        assert!(format!("{e:?}").contains("token keys are not configured"), "the log keeps the cause");
    }

    #[test]
    fn database_errors_of_auth_login_reclaim_and_revenue_keep_their_answer() {
        use crate::auth::login::LoginError;
        use crate::subsidy::reclaim::ReclaimError;
        use diesel::result::{DatabaseErrorKind, Error};
        let timeout = || {
            Error::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new(String::from("canceling statement due to statement timeout")),
            )
        };
        let lost = || Error::DatabaseError(DatabaseErrorKind::ClosedConnection, Box::new(String::from("closed")));
        let direct: ApiError = timeout().into();
        for e in [
            ApiError::from(AuthError::Database(timeout())),
            ApiError::from(LoginError::Database(timeout())),
            ApiError::from(ReclaimError::Database(timeout())),
            // Revenue reads fail as the ledger does.
            ApiError::from(LedgerError::from(timeout())),
        ] {
            assert_eq!(
                (e.status, e.code, &e.detail, e.retry_after),
                (direct.status, direct.code, &direct.detail, Some(1))
            );
            assert_eq!(e.code, ProblemCode::Timeout);
        }
        assert_eq!(answer(AuthError::Database(lost())).1, "service_unavailable");
        assert_eq!(answer(LoginError::Database(lost())).1, "service_unavailable");
        assert_eq!(answer(ReclaimError::Database(lost())).1, "service_unavailable");
        assert_eq!(answer(AuthError::Database(Error::NotFound)).0, 500);
    }

    #[test]
    fn login_refusals_are_answered_at_the_edge() {
        use crate::auth::login::LoginError;
        assert_eq!(
            answer(LoginError::WrongCredentials),
            (401, "unauthorized", "the email or the password is wrong".into())
        );
        let throttled = TooMany { what: "failed logins", seconds: 3 };
        let e: ApiError = LoginError::Throttled(throttled).into();
        assert_eq!(
            (e.status.as_u16(), e.code, e.detail.as_str(), e.retry_after),
            (429, ProblemCode::TooManyRequests, "too many failed logins from here: try again in 3 seconds", Some(3))
        );
        let response = e.error_response();
        assert_eq!(
            response.headers().get(actix_web::http::header::RETRY_AFTER).and_then(|v| v.to_str().ok()),
            Some("3")
        );
        let e: ApiError = TooMany { what: "sign-ups", seconds: 60 }.into();
        assert_eq!(
            (e.status.as_u16(), e.detail.as_str(), e.retry_after),
            (429, "too many sign-ups from here: try again in 60 seconds", Some(60))
        );
        let e: ApiError = LoginError::UnknownRole { user: uuid::Uuid::nil(), role: "root".into() }.into();
        assert_eq!((e.status.as_u16(), e.code), (500, ProblemCode::InternalError));
        assert!(format!("{e:?}").contains("\"root\", which is not a role"), "the log keeps the cause");
        let signing = LoginError::Signing(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into());
        assert_eq!(answer(signing).1, "internal_error");
    }

    #[test]
    fn a_grant_that_cannot_be_flagged_is_answered_at_the_edge() {
        use crate::subsidy::reclaim::ReclaimError;
        let bad = serde_json::to_value(std::collections::HashMap::from([((1, 2), 3)]))
            .expect_err("a map with tuple keys is not JSON");
        let e: ApiError = ReclaimError::EventData(bad).into();
        assert_eq!(
            (e.status.as_u16(), e.code, e.detail.as_str()),
            (500, ProblemCode::InternalError, "an unexpected error occurred; it has been logged")
        );
        assert!(format!("{e:?}").contains("could not be serialised"), "the log keeps the cause");
        let vanished = ReclaimError::Grant(crate::subsidy::programmes::GrantError::Ledger(LedgerError::Corrupt(
            "a grant vanished".into(),
        )));
        assert_eq!(answer(vanished).0, 500);
    }

    #[test]
    fn settlement_errors_are_answered_at_the_edge() {
        use crate::market::settlement::SettleError;
        let id = uuid::Uuid::nil();
        assert_eq!(answer(SettleError::OrderNotFound(id)), (404, "not_found", format!("order {id} does not exist")));
        assert_eq!(
            answer(SettleError::AlreadyEnded(crate::market::orders::OrderStatus::Cancelled)),
            (409, "conflict", "the order is already cancelled".into())
        );
        assert_eq!(answer(SettleError::NothingLeftToCancel).0, 409);
    }

    #[test]
    fn bank_errors_are_answered_at_the_edge() {
        use crate::finance::FinanceError;
        use rust_decimal_macros::dec;
        let id = uuid::Uuid::nil();
        let file = |e: FinanceError| {
            let e: ApiError = e.into();
            (e.status.as_u16(), e.code, e.detail, e.errors)
        };
        let row = |message: &str| {
            (422, ProblemCode::ValidationFailed, format!("file: {message}"), vec![FieldError::new("file", message)])
        };
        assert_eq!(
            file(FinanceError::InvalidFile { row: 1, why: "no column named \"currency\"".into() }),
            row("row 1: no column named \"currency\"")
        );
        assert_eq!(
            file(FinanceError::InvalidCell { row: 3, column: "amount".into(), why: "too precise".into() }),
            row("row 3, column amount: too precise")
        );
        assert_eq!(
            file(FinanceError::DuplicateBankRef { row: 3, bank_ref: "B1".into() }),
            row("row 3: bank_ref \"B1\" appears twice in the file")
        );
        assert_eq!(
            answer(FinanceError::LineNotFound(id)),
            (404, "not_found", format!("bank line {id} does not exist"))
        );
        let entries = |message: String| (422, "validation_failed", format!("journal_entry_ids: {message}"));
        assert_eq!(
            answer(FinanceError::NothingSuggested),
            entries("nothing is suggested for this line: name the entries".into())
        );
        assert_eq!(answer(FinanceError::EntryNotInBank(id)), entries(format!("entry {id} did not move the bank")));
        assert_eq!(
            answer(FinanceError::EntryInOtherCurrency { entry: id, currency: crate::money::Currency::Usd }),
            entries(format!("entry {id} is in USD"))
        );
        assert_eq!(
            answer(FinanceError::AmountsDiffer { entries: dec!(500000.0000), line: dec!(-70000.0000) }),
            entries("the entries moved 500000 and the line -70000".into())
        );
        let e: ApiError = FinanceError::NothingSuggested.into();
        assert_eq!(
            e.errors,
            vec![FieldError::new("journal_entry_ids", "nothing is suggested for this line: name the entries")]
        );
        assert_eq!(
            answer(FinanceError::AlreadyMatched),
            (409, "conflict", "the line is already matched: unmatch it first".into())
        );
        assert_eq!(
            answer(FinanceError::LineNotFree),
            (409, "conflict", "the line is matched or has a suggestion: unmatch it first".into())
        );
        assert_eq!(answer(FinanceError::NothingToUnmatch), (409, "conflict", "the line has no match to undo".into()));
        assert_eq!(
            answer(FinanceError::NotAReceipt),
            (409, "conflict", "only a receipt can be booked as a deposit".into())
        );
    }

    #[test]
    fn deposit_payout_and_report_errors_are_answered_at_the_edge() {
        use crate::finance::FinanceError;
        use crate::finance::payout_policy::PayoutPosition;
        use crate::money::Currency;
        use rust_decimal_macros::dec;
        let id = uuid::Uuid::nil();
        let e: ApiError = FinanceError::NoSuchTenant.into();
        assert_eq!(
            (e.status.as_u16(), e.detail, e.errors),
            (
                422,
                "tenant_org_id: no such tenant organisation".to_string(),
                vec![FieldError::new("tenant_org_id", "no such tenant organisation")]
            )
        );
        assert_eq!(
            answer(FinanceError::NoSuchProvider),
            (422, "validation_failed", "provider_org_id: no such provider organisation".into())
        );
        let position = |awaiting_programme, provider_receivable| PayoutPosition {
            payable: dec!(100000),
            awaiting_programme,
            advance_allowed: dec!(10000),
            provider_receivable,
            payable_now: dec!(50000),
        };
        assert_eq!(
            answer(FinanceError::MoreThanPayableNow { position: position(dec!(0), dec!(0)), currency: Currency::Krw }),
            (
                422,
                "validation_failed",
                "amount: is more than the provider may be paid now (50000 of a posted payable of 100000)".into()
            )
        );
        let e: ApiError =
            FinanceError::MoreThanPayableNow { position: position(dec!(40000), dec!(2500)), currency: Currency::Usd }
                .into();
        assert_eq!(
            (e.errors[0].field.as_str(), e.errors[0].message.as_str()),
            (
                "amount",
                "is more than the provider may be paid now (50000.00 of a posted payable of 100000.00; 30000.00 of \
                 settled subsidy waits for the programme's payment; 2500.00 the provider owes is recovered first)"
            )
        );
        assert_eq!(
            answer(FinanceError::OrgNotFound(id)),
            (404, "not_found", format!("organisation {id} does not exist"))
        );
        assert_eq!(
            answer(FinanceError::FromAfterTo),
            (422, "validation_failed", "from: must not be after `to`".into())
        );
    }

    #[test]
    fn finance_errors_of_the_service_itself_are_hidden_and_the_rest_pass_through() {
        use crate::finance::FinanceError;
        use diesel::result::{DatabaseErrorKind, Error};
        let hidden = (500, "internal_error", "an unexpected error occurred; it has been logged".to_string());
        assert_eq!(answer(FinanceError::NotAnAmount("12,5".into())), hidden);
        assert_eq!(answer(FinanceError::TotalOverflow), hidden);
        // An overflow in the funding figures is the service's, not a bad posting (422).
        assert_eq!(answer(FinanceError::FundingFigures(LedgerError::Overflow)), hidden);
        let day = chrono::NaiveDate::parse_from_str("2026-13-01", "%Y-%m-%d").expect_err("no 13th month");
        assert_eq!(answer(FinanceError::UnreadableDay(day)), hidden);
        let e: ApiError = FinanceError::NotAnAmount("12,5".into()).into();
        assert!(format!("{e:?}").contains("\"12,5\" is not an amount"), "the log keeps the cause: {e:?}");
        assert_eq!(answer(FinanceError::Ledger(LedgerError::Corrupt("account x vanished".into()))), hidden);
        assert_eq!(
            answer(FinanceError::Ledger(LedgerError::Overflow)),
            (422, "validation_failed", "postings: amount overflow".into())
        );
        assert_eq!(answer(FinanceError::Database(Error::NotFound)), hidden);
        let lost = Error::DatabaseError(DatabaseErrorKind::ClosedConnection, Box::new(String::from("server closed")));
        assert_eq!(answer(FinanceError::Database(lost)).1, "service_unavailable");
        let waited = Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new(String::from("canceling statement due to lock timeout")),
        );
        let e: ApiError = FinanceError::Database(waited).into();
        assert_eq!((e.status.as_u16(), e.code, e.retry_after), (503, ProblemCode::Timeout, Some(1)));
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = ApiError::internal(std::io::Error::other("password=hunter2"));
        assert!(!e.problem().detail.contains("hunter2"));
        assert!(format!("{e:?}").contains("hunter2"), "the log keeps the cause");
    }
}
