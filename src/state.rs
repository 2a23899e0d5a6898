//! What every handler can reach. Kept apart from `startup`, which builds the
//! application from the routes, so that route modules depend on this small
//! module and not on the module that depends on them.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Settings;
use crate::db::DbPool;

pub struct AppState {
    pub pool: DbPool,
    /// `/readyz`'s own connection: readiness is never queued behind requests.
    pub probe: DbPool,
    pub clock: Clock,
    pub settings: Arc<Settings>,
}
