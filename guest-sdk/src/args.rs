//! Argument types for what SignalR clients send, so a hub's method signatures
//! can name them directly.
//!
//! - [`Integer`]: an integral number, however the client encoded it.
//! - [`hub_enum!`](crate::hub_enum): a Rust enum read as .NET clients send
//!   enums, by name (any case) or by number.

use std::fmt;

use serde::de::{Deserialize, Deserializer, Error, Visitor};

/// An integral number argument, in canonical decimal form.
///
/// JavaScript clients send a `number` and a MessagePack client may send the
/// same value as a float (`42.0`), so any number with an integral value is
/// accepted: an `i64`, a `u64`, or a float up to 2^53 in magnitude. `42`,
/// `42.0` and `4.2e1` are equal and display as `42`, which makes an
/// `Integer` a good key: `format!("client:{id}")`. Anything else fails the
/// call's argument decoding with `expected an integer, got 1.5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Integer(Repr);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Repr {
    Signed(i64),
    /// Only above `i64::MAX`, so each value has one form.
    Large(u64),
}

impl Integer {
    /// The value, when it fits an `i64` (every value but those above `i64::MAX`).
    pub fn as_i64(self) -> Option<i64> {
        match self.0 {
            Repr::Signed(n) => Some(n),
            Repr::Large(_) => None,
        }
    }
}

impl From<i64> for Integer {
    fn from(n: i64) -> Self {
        Self(Repr::Signed(n))
    }
}

/// The largest integer a JavaScript `number` (an f64) holds exactly.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

impl<'de> Deserialize<'de> for Integer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let number = serde_json::Number::deserialize(deserializer)?;
        if let Some(n) = number.as_i64() {
            return Ok(Self(Repr::Signed(n)));
        }
        if let Some(n) = number.as_u64() {
            return Ok(Self(Repr::Large(n)));
        }
        match number.as_f64() {
            // In range and integral, so the cast is exact.
            Some(f) if f.fract() == 0.0 && f.abs() <= MAX_EXACT => Ok(Self(Repr::Signed(f as i64))),
            _ => Err(D::Error::custom(format_args!(
                "expected an integer, got {number}"
            ))),
        }
    }
}

impl fmt::Display for Integer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Repr::Signed(n) => n.fmt(f),
            Repr::Large(n) => n.fmt(f),
        }
    }
}

/// Declares a fieldless enum that hub methods take as an argument the way a
/// .NET client sends an enum: by name, in any case (as System.Text.Json's
/// enum converter reads it), or by number, the variant's position from 0.
///
/// ```
/// switchboard_guest::hub_enum! {
///     /// What happened.
///     pub enum Status { Confirmed, Failed }
/// }
/// # use switchboard_guest::serde_json::{from_str, Error};
/// assert_eq!(from_str::<Status>(r#""confirmed""#).ok(), Some(Status::Confirmed));
/// assert_eq!(from_str::<Status>("1").ok(), Some(Status::Failed));
/// let e: Error = from_str::<Status>(r#""Pending""#).unwrap_err();
/// assert!(e.to_string().starts_with(
///     r#"Unknown status "Pending": expected "Confirmed" (0) or "Failed" (1)"#
/// ));
/// ```
///
/// The enum derives `Debug`, `Clone`, `Copy`, `PartialEq` and `Eq`. An
/// unknown name or number fails the call's argument decoding, before the
/// method runs, with `Unknown status "Pending": expected "Confirmed" (0) or
/// "Failed" (1)` (the type's name in lower case).
#[macro_export]
macro_rules! hub_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name { $($(#[$vmeta])* $variant),+ }

        impl<'de> $crate::__private::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> ::core::result::Result<Self, D::Error> {
                const ALL: &[$name] = &[$($name::$variant),+];
                const NAMES: &[&str] = &[$(stringify!($variant)),+];
                $crate::args::variant_index(deserializer, stringify!($name), NAMES).map(|i| ALL[i])
            }
        }
    };
}

/// What [`hub_enum!`](crate::hub_enum) expands to: the position in `names`
/// of the variant a client sent by name (any case) or by number.
#[doc(hidden)]
pub fn variant_index<'de, D: Deserializer<'de>>(
    deserializer: D,
    type_name: &'static str,
    names: &'static [&'static str],
) -> Result<usize, D::Error> {
    deserializer.deserialize_any(VariantVisitor { type_name, names })
}

struct VariantVisitor {
    type_name: &'static str,
    names: &'static [&'static str],
}

impl VariantVisitor {
    fn unknown<E: Error>(&self, shown: impl fmt::Display) -> E {
        E::custom(format_args!(
            "Unknown {} {shown}: expected {}",
            self.type_name.to_ascii_lowercase(),
            Expected(self.names)
        ))
    }

    fn by_number(&self, n: f64) -> Option<usize> {
        (n >= 0.0 && n.fract() == 0.0 && n < self.names.len() as f64).then_some(n as usize)
    }
}

/// `"Confirmed" (0) or "Failed" (1)`.
struct Expected(&'static [&'static str]);

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            let separator = match i {
                0 => "",
                _ if i + 1 == self.0.len() => " or ",
                _ => ", ",
            };
            write!(f, "{separator}\"{name}\" ({i})")?;
        }
        Ok(())
    }
}

impl Visitor<'_> for VariantVisitor {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Expected(self.names))
    }

    fn visit_str<E: Error>(self, name: &str) -> Result<usize, E> {
        let found = self.names.iter().position(|n| n.eq_ignore_ascii_case(name));
        found.ok_or_else(|| self.unknown(format_args!("\"{name}\"")))
    }

    fn visit_u64<E: Error>(self, n: u64) -> Result<usize, E> {
        let found = usize::try_from(n).ok().filter(|&i| i < self.names.len());
        found.ok_or_else(|| self.unknown(n))
    }

    fn visit_i64<E: Error>(self, n: i64) -> Result<usize, E> {
        let found = usize::try_from(n).ok().filter(|&i| i < self.names.len());
        found.ok_or_else(|| self.unknown(n))
    }

    fn visit_f64<E: Error>(self, n: f64) -> Result<usize, E> {
        // Shown through serde_json's float printer, which a component has
        // anyway; `f64`'s own `Display` would add ~12 KB.
        self.by_number(n)
            .ok_or_else(|| match serde_json::Number::from_f64(n) {
                Some(shown) => self.unknown(shown),
                None => self.unknown("(not a finite number)"),
            })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, from_value, json};

    use super::Integer;

    fn integer(value: Value) -> Result<Integer, serde_json::Error> {
        from_value(value)
    }

    #[test]
    fn integers_are_canonical() {
        assert_eq!(integer(json!(42)).unwrap().to_string(), "42");
        assert_eq!(integer(json!(42.0)).unwrap(), integer(json!(42)).unwrap());
        assert_eq!(integer(json!(4.2e1)).unwrap(), Integer::from(42));
        assert_eq!(integer(json!(-7.0)).unwrap().as_i64(), Some(-7));
        let max = integer(json!(u64::MAX)).unwrap();
        assert_eq!(
            (max.to_string(), max.as_i64()),
            (u64::MAX.to_string(), None)
        );
        assert_eq!(integer(json!(i64::MAX)).unwrap().as_i64(), Some(i64::MAX));
    }

    #[test]
    fn non_integers_are_refused() {
        let e = integer(json!(1.5)).unwrap_err().to_string();
        assert_eq!(e, "expected an integer, got 1.5");
        assert!(integer(json!(1e300)).is_err());
        assert!(integer(json!("42")).is_err());
        assert!(integer(json!(null)).is_err());
    }

    crate::hub_enum! {
        /// Three, to see the commas.
        enum Light { Red, Amber, Green }
    }

    fn light(value: Value) -> Result<Light, serde_json::Error> {
        from_value(value)
    }

    #[test]
    fn enums_by_name_in_any_case_or_by_number() {
        assert_eq!(light(json!("Red")).unwrap(), Light::Red);
        assert_eq!(light(json!("aMBER")).unwrap(), Light::Amber);
        assert_eq!(light(json!(2)).unwrap(), Light::Green);
        assert_eq!(light(json!(1.0)).unwrap(), Light::Amber);
        assert_eq!(light(json!(-0.0)).unwrap(), Light::Red);
    }

    #[test]
    fn unknown_variants_are_named_with_what_is_expected() {
        let expected = r#"expected "Red" (0), "Amber" (1) or "Green" (2)"#;
        let e = light(json!("Blue")).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(r#"Unknown light "Blue": {expected}"#)),
            "{e}"
        );
        for (bad, shown) in [(json!(3), "3"), (json!(-1), "-1"), (json!(0.5), "0.5")] {
            let e = light(bad).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("Unknown light {shown}: {expected}")),
                "{e}"
            );
        }
        let e = light(json!(true)).unwrap_err().to_string();
        assert!(e.contains(expected), "{e}");
    }
}
