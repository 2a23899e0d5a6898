//! The ledger's vocabulary: account types and floors, entry and posting kinds,
//! and the four balance figures (SPEC section 3, after TigerBeetle).

use rust_decimal::Decimal;
use uuid::Uuid;

use crate::money::{Currency, Money};

/// Declares a fieldless enum that is stored and sent as text, each variant
/// with its text:
///
/// ```ignore
/// text_enum_sql! {
///     /// Docs and attributes (`#[derive(PartialOrd, Ord)]`, say) are kept.
///     pub enum NormalSide {
///         Debit => "debit",
///         Credit => "credit",
///     }
/// }
/// ```
///
/// The enum derives `Debug, Clone, Copy, PartialEq, Eq, Hash`, serde's
/// `Serialize` and `Deserialize` and utoipa's `ToSchema`, and gets `ALL`,
/// `as_str`, `Display` and `FromStr` on the text. Each variant's serde name
/// is its text (`#[serde(rename = "debit")]`), so the JSON, the OpenAPI
/// document and the stored text are one literal and cannot drift apart.
///
/// The texts are matched as `tt`, not `literal`: a `literal` fragment reaches
/// a derive wrapped in an invisible group, and utoipa's reading of
/// `serde(rename)` passes over it (its schema would name the variant instead).
macro_rules! text_enum {
    (
        $(#[$attr:meta])*
        $vis:vis enum $name:ident {
            $($(#[$variant_attr:meta])* $variant:ident => $text:tt),+ $(,)?
        }
    ) => {
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize, ::utoipa::ToSchema,
        )]
        $(#[$attr])*
        $vis enum $name {
            $(
                $(#[$variant_attr])*
                #[serde(rename = $text)]
                $variant,
            )+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} {other:?}: expected one of {}",
                        stringify!($name),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}
pub(crate) use text_enum;

/// [`text_enum!`] for a value stored in a `text` column: the enum also
/// derives diesel's `AsExpression` and `FromSqlRow` with
/// `#[diesel(sql_type = diesel::sql_types::Text)]`. Rows read it through its
/// `FromStr` (an unknown text is a deserialisation error, so a corrupt row
/// fails loudly instead of passing as some other status) and write its
/// `as_str`.
///
/// `text_enum_sql!(Name via method)` adds only the column mapping, for a type
/// declared by hand that already has `FromStr` and a
/// `fn method(self) -> &'static str` giving its text (`Currency` and its
/// `code`).
macro_rules! text_enum_sql {
    ($name:ident via $to_text:ident) => {
        impl ::diesel::deserialize::FromSql<::diesel::sql_types::Text, ::diesel::pg::Pg> for $name {
            fn from_sql(bytes: ::diesel::pg::PgValue<'_>) -> ::diesel::deserialize::Result<Self> {
                let text = <String as ::diesel::deserialize::FromSql<::diesel::sql_types::Text, ::diesel::pg::Pg>>::from_sql(bytes)?;
                $crate::ledger::model::stored_text(&text, stringify!($name), $name::$to_text)
            }
        }

        impl ::diesel::serialize::ToSql<::diesel::sql_types::Text, ::diesel::pg::Pg> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut ::diesel::serialize::Output<'b, '_, ::diesel::pg::Pg>,
            ) -> ::diesel::serialize::Result {
                <str as ::diesel::serialize::ToSql<::diesel::sql_types::Text, ::diesel::pg::Pg>>::to_sql(self.$to_text(), out)
            }
        }
    };
    (
        $(#[$attr:meta])*
        $vis:vis enum $name:ident {
            $($(#[$variant_attr:meta])* $variant:ident => $text:tt),+ $(,)?
        }
    ) => {
        $crate::ledger::model::text_enum! {
            #[derive(::diesel::AsExpression, ::diesel::FromSqlRow)]
            #[diesel(sql_type = ::diesel::sql_types::Text)]
            $(#[$attr])*
            $vis enum $name {
                $($(#[$variant_attr])* $variant => $text),+
            }
        }
        $crate::ledger::model::text_enum_sql!($name via as_str);
    };
}
pub(crate) use text_enum_sql;

/// Reads a stored text as `T` (for [`text_enum_sql!`]): only a text `T`
/// writes itself as is accepted, so a damaged value (unknown, or in another
/// case or with spaces `FromStr` would forgive) fails the row's read instead
/// of passing as some value. `name` names the type for the log.
pub fn stored_text<T>(text: &str, name: &str, to_text: fn(T) -> &'static str) -> diesel::deserialize::Result<T>
where
    T: std::str::FromStr + Copy,
    T::Err: std::fmt::Display,
{
    match text.parse::<T>() {
        Ok(value) if to_text(value) == text => Ok(value),
        Ok(_) => Err(format!("stored {name} {text:?} is not written as gpuhour writes it").into()),
        Err(e) => Err(format!("stored {name}: {e}").into()),
    }
}

text_enum_sql! {
    pub enum AccountType {
        Asset => "asset",
        Liability => "liability",
        Equity => "equity",
        Revenue => "revenue",
        Expense => "expense",
        /// Off-balance-sheet accounts (the subsidy budget): they balance among themselves.
        Memo => "memo",
    }
}

text_enum_sql! {
    /// Which side increases an account's balance.
    pub enum NormalSide {
        Debit => "debit",
        Credit => "credit",
    }
}

text_enum_sql! {
    /// A balance floor (TigerBeetle's `debits_must_not_exceed_credits` and its mirror).
    pub enum Floor {
        NoOverdraft => "no_overdraft",
    }
}

text_enum! {
    pub enum EntryKind {
        Deposit => "deposit",
        Order => "order",
        Settlement => "settlement",
        Cancellation => "cancellation",
        OutageCredit => "outage_credit",
        Payout => "payout",
        ClaimPayment => "claim_payment",
        ProgrammeBudget => "programme_budget",
        Grant => "grant",
        GrantRelease => "grant_release",
        Adjustment => "adjustment",
        Reversal => "reversal",
        /// The operator gives subsidy back to a programme (goodwill, a correction).
        CreditNote => "credit_note",
        /// A claimed amount the programme disallowed, written off the receivable.
        SubsidyWriteOff => "subsidy_write_off",
        /// A tranche the programme paid in advance of its claims.
        Advance => "advance",
        /// Unapplied advance settling (part of) a submitted claim.
        AdvanceApplication => "advance_application",
        /// Year-end settlement: what the programme gave beyond its subsidy becomes a refund due.
        ProgrammeSettlement => "programme_settlement",
        /// The refund due paid back to the programme.
        ProgrammeRefund => "programme_refund",
    }
}

text_enum_sql! {
    pub enum PostingKind {
        /// Moves posted money at once.
        Posted => "posted",
        /// Reserves: counted in the pending figures and against floors.
        Pending => "pending",
        /// Turns (part of) an earlier pending posting into posted money.
        PostPending => "post_pending",
        /// Releases (part of) an earlier pending posting.
        VoidPending => "void_pending",
    }
}

/// The four figures an account keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Balances {
    pub debits_posted: Decimal,
    pub credits_posted: Decimal,
    pub debits_pending: Decimal,
    pub credits_pending: Decimal,
}

impl Balances {
    /// Posted balance in the account's normal direction (negative when it is overdrawn).
    pub fn posted_balance(&self, side: NormalSide) -> Decimal {
        match side {
            NormalSide::Credit => self.credits_posted - self.debits_posted,
            NormalSide::Debit => self.debits_posted - self.credits_posted,
        }
    }

    /// What may still be drawn: the posted balance less pending withdrawals.
    pub fn available(&self, side: NormalSide) -> Decimal {
        match side {
            NormalSide::Credit => self.credits_posted - self.debits_posted - self.debits_pending,
            NormalSide::Debit => self.debits_posted - self.credits_posted - self.credits_pending,
        }
    }

    /// Whether these figures respect `floor` for an account of `side`.
    pub fn respects(&self, floor: Option<Floor>, side: NormalSide) -> bool {
        match floor {
            None => true,
            Some(Floor::NoOverdraft) => self.available(side) >= Decimal::ZERO,
        }
    }
}

/// An account as the posting code sees it while its row is locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    pub id: Uuid,
    pub code: String,
    pub currency: Currency,
    pub account_type: AccountType,
    pub normal_side: NormalSide,
    pub floor: Option<Floor>,
    pub balances: Balances,
}

impl AccountState {
    /// The posted balance in the account's normal direction.
    pub fn balance(&self) -> Money {
        Money::new(self.balances.posted_balance(self.normal_side), self.currency)
    }
}

/// A pending posting as the posting code sees it while its remainder is locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingState {
    pub posting_id: Uuid,
    pub debit_account_id: Uuid,
    pub credit_account_id: Uuid,
    pub currency: Currency,
    pub remaining: Decimal,
}

/// Who caused an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Actor {
    pub user_id: Option<Uuid>,
    pub org_id: Option<Uuid>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_enums_round_trip() {
        for kind in EntryKind::ALL {
            assert_eq!(kind.as_str().parse::<EntryKind>(), Ok(*kind));
        }
        for kind in PostingKind::ALL {
            assert_eq!(kind.as_str().parse::<PostingKind>(), Ok(*kind));
        }
        for t in AccountType::ALL {
            assert_eq!(t.as_str().parse::<AccountType>(), Ok(*t));
        }
        assert!("Deposit".parse::<EntryKind>().is_err());
    }

    /// The API and the table must not drift: each text enum's JSON for every
    /// variant is the text it is stored as, and that text reads back.
    #[test]
    fn each_text_enum_serialises_as_its_stored_text() {
        fn check<T>(all: &[T], to_text: fn(T) -> &'static str)
        where
            T: Copy + PartialEq + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
        {
            for value in all {
                let text = to_text(*value);
                assert_eq!(serde_json::to_value(value).ok(), Some(serde_json::Value::from(text)), "{value:?}");
                assert_eq!(serde_json::from_value::<T>(text.into()).ok(), Some(*value), "{text:?}");
            }
        }
        macro_rules! check_each {
            ($($name:path),+ $(,)?) => { $(check(<$name>::ALL, <$name>::as_str);)+ };
        }
        check_each!(
            AccountType,
            NormalSide,
            Floor,
            EntryKind,
            PostingKind,
            crate::auth::model::OrgKind,
            crate::auth::model::TenantCategory,
            crate::auth::principal::Role,
            crate::finance::bank::BankLineStatus,
            crate::finance::bank::MatchState,
            crate::events::EventType,
            crate::webhooks::store::EndpointStatus,
            crate::webhooks::store::DeliveryStatus,
            crate::market::listings::ListingStatus,
            crate::market::orders::OrderStatus,
            crate::subsidy::programmes::GrantStatus,
            crate::subsidy::claims::ClaimStatus,
            Shade,
        );
        check(&Currency::ALL, Currency::code);
    }

    text_enum_sql! {
        /// A fieldless enum mapped by the macro, as the domain enums are.
        enum Shade {
            Light => "light",
            Dark => "dark",
        }
    }

    #[test]
    fn a_stored_text_reads_back_as_the_value_that_wrote_it() {
        for shade in Shade::ALL {
            assert_eq!(stored_text(shade.as_str(), "Shade", Shade::as_str).ok(), Some(*shade));
        }
        for currency in Currency::ALL {
            assert_eq!(stored_text(currency.code(), "Currency", Currency::code).ok(), Some(currency));
        }
        for status in crate::market::orders::OrderStatus::ALL {
            assert_eq!(
                stored_text(status.as_str(), "OrderStatus", crate::market::orders::OrderStatus::as_str).ok(),
                Some(*status)
            );
        }
    }

    #[test]
    fn a_stored_text_outside_the_enum_is_refused_never_defaulted() {
        let refused = |text: &str| stored_text(text, "Shade", Shade::as_str).map_err(|e| e.to_string());
        assert_eq!(
            refused("grey"),
            Err(r#"stored Shade: unknown Shade "grey": expected one of light, dark"#.to_string())
        );
        assert!(refused("Light").is_err());
        assert!(refused("").is_err());
        let currency = |text: &str| stored_text(text, "Currency", Currency::code).map_err(|e| e.to_string());
        // `FromStr` forgives the spaces a person types; a stored code must be exact.
        assert_eq!(" KRW".parse::<Currency>(), Ok(Currency::Krw));
        assert_eq!(currency(" KRW"), Err(r#"stored Currency " KRW" is not written as gpuhour writes it"#.to_string()));
        assert!(currency("krw").is_err());
        assert!(currency("XYZ").is_err());
    }
}
