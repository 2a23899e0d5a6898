//! Money as people read it: KRW without decimals and with thousands
//! separators (`1,234,567원` in Korean, `₩1,234,567` in English), other
//! currencies at their own precision. Display only: amounts stay exact
//! `Decimal`s everywhere else.

use rust_decimal::{Decimal, RoundingStrategy};

use super::i18n::Lang;
use crate::money::Currency;

/// `amount` in `currency` for a reader of `lang`, at the currency's precision.
pub fn format_money(amount: Decimal, currency: Currency, lang: Lang) -> String {
    let digits = grouped(amount, currency.minor_units());
    let sign =
        if amount.is_sign_negative() && !digits.chars().all(|c| matches!(c, '0' | ',' | '.')) { "-" } else { "" };
    match (lang, currency) {
        (Lang::Ko, Currency::Krw) => format!("{sign}{digits}원"),
        (Lang::Ko, Currency::Jpy) => format!("{sign}{digits}엔"),
        (Lang::Ko, Currency::Usd) => format!("{sign}{digits}달러"),
        (Lang::Ko, Currency::Eur) => format!("{sign}{digits}유로"),
        (Lang::En, Currency::Krw) => format!("{sign}₩{digits}"),
        (Lang::En, Currency::Jpy) => format!("{sign}¥{digits}"),
        (Lang::En, Currency::Usd) => format!("{sign}${digits}"),
        (Lang::En, Currency::Eur) => format!("{sign}€{digits}"),
    }
}

/// A stored amount string (`"1234.50"`, as the API's views carry it) in
/// `currency`'s code, formatted; shown as it is when it is not an amount.
pub fn format_money_str(amount: &str, currency: &str, lang: Lang) -> String {
    match currency.parse::<Currency>() {
        Ok(c) => format_money_in(amount, c, lang),
        Err(_) => format!("{amount} {currency}"),
    }
}

/// [`format_money_str`] for a view that carries its currency as a [`Currency`].
pub fn format_money_in(amount: &str, currency: Currency, lang: Lang) -> String {
    match amount.parse::<Decimal>() {
        Ok(value) => format_money(value, currency, lang),
        Err(_) => format!("{amount} {currency}"),
    }
}

/// A unit price (`"1000.5"` KRW per GPU-hour) with every digit it has: a
/// price may carry more fraction digits than its currency, and rounding it
/// for show would misstate it.
pub fn format_price(price: &str, currency: &str, lang: Lang) -> String {
    match (price.parse::<Decimal>(), currency.parse::<Currency>()) {
        (Ok(value), Ok(c)) => format_unit_price(value, c, lang),
        _ => format!("{price} {currency}"),
    }
}

/// [`format_price`] of a row's price and currency.
pub fn format_unit_price(price: Decimal, c: Currency, lang: Lang) -> String {
    let places = price.normalize().scale().max(c.minor_units());
    let digits = grouped(price, places);
    let sign = if price.is_sign_negative() { "-" } else { "" };
    // The currency's own format with the price's digits.
    let template = format_money(Decimal::ZERO, c, lang);
    let zero = grouped(Decimal::ZERO, c.minor_units());
    format!("{sign}{}", template.replacen(&zero, &digits, 1))
}

/// The magnitude of `amount` with `places` fraction digits (half away from
/// zero) and a comma between each group of three integer digits.
fn grouped(amount: Decimal, places: u32) -> String {
    let mut value = amount.abs().round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero);
    value.rescale(places);
    let text = value.to_string();
    let (integer, fraction) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text.as_str(), None),
    };
    let mut out = String::with_capacity(text.len() + integer.len() / 3);
    for (i, c) in integer.chars().enumerate() {
        if i > 0 && (integer.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = fraction {
        out.push('.');
        out.push_str(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn won_has_no_decimals_and_groups_thousands() {
        assert_eq!(format_money(dec!(1234567), Currency::Krw, Lang::Ko), "1,234,567원");
        assert_eq!(format_money(dec!(1234567), Currency::Krw, Lang::En), "₩1,234,567");
        assert_eq!(format_money(dec!(1234567.00), Currency::Krw, Lang::Ko), "1,234,567원");
        assert_eq!(format_money(dec!(999), Currency::Krw, Lang::Ko), "999원");
        assert_eq!(format_money(dec!(1000), Currency::Krw, Lang::En), "₩1,000");
        assert_eq!(format_money(dec!(0), Currency::Krw, Lang::Ko), "0원");
        assert_eq!(format_money(dec!(-120000), Currency::Krw, Lang::Ko), "-120,000원");
        assert_eq!(format_money(dec!(-120000), Currency::Krw, Lang::En), "-₩120,000");
    }

    #[test]
    fn other_currencies_keep_their_precision() {
        assert_eq!(format_money(dec!(1234.5), Currency::Usd, Lang::En), "$1,234.50");
        assert_eq!(format_money(dec!(1234.5), Currency::Usd, Lang::Ko), "1,234.50달러");
        assert_eq!(format_money(dec!(0.05), Currency::Eur, Lang::En), "€0.05");
        assert_eq!(format_money(dec!(1000000), Currency::Eur, Lang::Ko), "1,000,000.00유로");
        assert_eq!(format_money(dec!(123456), Currency::Jpy, Lang::En), "¥123,456");
        assert_eq!(format_money(dec!(-0.01), Currency::Usd, Lang::En), "-$0.01");
    }

    #[test]
    fn prices_keep_their_own_digits() {
        assert_eq!(format_price("1000.5", "KRW", Lang::Ko), "1,000.5원");
        assert_eq!(format_price("2500000", "KRW", Lang::En), "₩2,500,000");
        assert_eq!(format_price("1.2345", "USD", Lang::En), "$1.2345");
        assert_eq!(format_price("3", "USD", Lang::Ko), "3.00달러");
        assert_eq!(format_unit_price(rust_decimal_macros::dec!(1000.50), Currency::Krw, Lang::Ko), "1,000.5원");
        assert_eq!(format_money_in("1234.5", Currency::Usd, Lang::En), "$1,234.50");
    }

    #[test]
    fn amounts_from_views_are_parsed_or_shown_as_they_are() {
        assert_eq!(format_money_str("1234567", "KRW", Lang::Ko), "1,234,567원");
        assert_eq!(format_money_str("12.30", "USD", Lang::En), "$12.30");
        assert_eq!(format_money_str("n/a", "KRW", Lang::En), "n/a KRW");
    }
}
