//! Who a report is about, by name: every report that groups by or lists an
//! organisation gives its `id`, `name` and `category`, so no reader has to
//! look a bare UUID up.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::store::OrgRow;
use crate::db::schema::organisations;

/// An organisation as reports name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct OrgRef {
    pub id: Uuid,
    pub name: String,
    /// A tenant's category (`sme`, `university`, …); null for providers and the operator.
    pub category: Option<String>,
}

impl From<&OrgRow> for OrgRef {
    fn from(org: &OrgRow) -> Self {
        OrgRef { id: org.id, name: org.name.clone(), category: org.category.clone() }
    }
}

/// The organisations among `ids`, by id (ids of no organisation are absent).
pub async fn orgs(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<HashMap<Uuid, OrgRef>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, String, Option<String>)> = organisations::table
        .filter(organisations::id.eq_any(ids))
        .select((organisations::id, organisations::name, organisations::category))
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|(id, name, category)| (id, OrgRef { id, name, category })).collect())
}
