//! Closed sets of names: fieldless enums whose variants each have one name on the wire.

/// Declares fieldless enums whose wire names follow from their variants by one case rule
/// (`pub enum Scope as "lowercase" { … }`; a variant may name itself instead:
/// `Done = "DONE"`), and derives from that what used to be written by hand three times over:
/// serde's names (`rename_all`, and `rename` for a variant that names itself), `as_str`,
/// `parse`, `Display` and `ALL` (in declaration order). The JSON form, the text form and the
/// list of variants cannot drift apart.
///
/// The rules are serde's: `"snake_case"`, `"kebab-case"`, `"lowercase"`,
/// `"SCREAMING_SNAKE_CASE"`. Each enum gets `Debug, Clone, Copy, PartialEq, Eq, Hash,
/// Serialize, Deserialize`; further derives (`Default`, `PartialOrd`, `ToSchema`, bincode's)
/// and docs are passed through. A variant's position is what bincode stores: add new variants
/// at the end.
#[macro_export]
macro_rules! names {
    ($(
        $(#[$attr:meta])*
        $vis:vis enum $name:ident as $case:tt {
            $( $(#[$vattr:meta])* $variant:ident $(= $text:tt)? ),+ $(,)?
        }
    )+) => {$(
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(rename_all = $case)]
        $vis enum $name {
            $( $(#[$vattr])* $(#[serde(rename = $text)])? $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            $vis const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The name on the wire (the JSON form).
            $vis fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $crate::__wire_name!($case, $variant $(, $text)?),)+
                }
            }

            /// The variant a name names.
            $vis fn parse(name: &str) -> Option<$name> {
                $name::ALL.into_iter().find(|v| v.as_str() == name)
            }
        }

        impl $crate::names::Named for $name {
            fn all() -> &'static [$name] {
                &$name::ALL
            }

            fn name(self) -> &'static str {
                self.as_str()
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )+};
}

/// What every [`names!`] enum is, for code that takes any of them (the CLI's value parser).
pub trait Named: Copy + Send + Sync + 'static {
    /// Every variant, in declaration order.
    fn all() -> &'static [Self];
    /// The name on the wire.
    fn name(self) -> &'static str;
}

/// One variant's wire name, as a `&'static str` computed at compile time.
#[doc(hidden)]
#[macro_export]
macro_rules! __wire_name {
    ($case:tt, $variant:ident, $text:tt) => {
        $text
    };
    ($case:tt, $variant:ident) => {{
        const LEN: usize = $crate::names::cased_len($case, stringify!($variant));
        const BYTES: [u8; LEN] = $crate::names::cased($case, stringify!($variant));
        const NAME: &str = match ::core::str::from_utf8(&BYTES) {
            Ok(name) => name,
            Err(_) => panic!("a wire name is ASCII"),
        };
        NAME
    }};
}

/// How a case rule turns one character of a variant's name (`InProgress`) into wire text: the
/// separator it puts before an inner capital, and whether letters are upper case.
const fn rule(case: &str) -> (Option<u8>, bool) {
    match case.as_bytes() {
        b"snake_case" => (Some(b'_'), false),
        b"kebab-case" => (Some(b'-'), false),
        b"lowercase" => (None, false),
        b"SCREAMING_SNAKE_CASE" => (Some(b'_'), true),
        _ => {
            panic!("names!: the case is snake_case, kebab-case, lowercase or SCREAMING_SNAKE_CASE")
        }
    }
}

/// The length of `variant` in `case`.
#[doc(hidden)]
pub const fn cased_len(case: &str, variant: &str) -> usize {
    let (sep, _) = rule(case);
    let b = variant.as_bytes();
    let mut n = b.len();
    let mut i = 1;
    while i < b.len() {
        if sep.is_some() && b[i].is_ascii_uppercase() {
            n += 1;
        }
        i += 1;
    }
    n
}

/// `variant` in `case`, as serde's `rename_all` writes it.
#[doc(hidden)]
pub const fn cased<const N: usize>(case: &str, variant: &str) -> [u8; N] {
    let (sep, upper) = rule(case);
    let b = variant.as_bytes();
    let mut out = [0u8; N];
    let (mut i, mut o) = (0, 0);
    while i < b.len() {
        if let Some(s) = sep {
            if i > 0 && b[i].is_ascii_uppercase() {
                out[o] = s;
                o += 1;
            }
        }
        out[o] = if upper {
            b[i].to_ascii_uppercase()
        } else {
            b[i].to_ascii_lowercase()
        };
        o += 1;
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    crate::names! {
        /// A test set.
        #[derive(Default, PartialOrd, Ord)]
        enum Colour as "snake_case" {
            #[default]
            Red,
            DarkBlue,
            Named = "green!",
        }

        enum Kebab as "kebab-case" { WebsocketIdle, Live }

        enum Shout as "SCREAMING_SNAKE_CASE" { Done, NeedsInput }

        enum Lower as "lowercase" { ReadWrite }
    }

    fn agree<T>(all: &[T], parse: fn(&str) -> Option<T>)
    where
        T: Copy + PartialEq + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
        T: std::fmt::Display,
    {
        for &v in all {
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{v}\""), "{v:?}");
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), v);
            assert_eq!(parse(&v.to_string()), Some(v));
        }
        assert_eq!(parse("no such name"), None);
    }

    #[test]
    fn the_json_name_the_text_name_and_parse_agree() {
        agree(&Colour::ALL, Colour::parse);
        agree(&Kebab::ALL, Kebab::parse);
        agree(&Shout::ALL, Shout::parse);
        agree(&Lower::ALL, Lower::parse);
        let names: Vec<_> = Colour::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names, ["red", "dark_blue", "green!"]);
        assert_eq!(Kebab::WebsocketIdle.as_str(), "websocket-idle");
        assert_eq!(Shout::NeedsInput.as_str(), "NEEDS_INPUT");
        assert_eq!(Lower::ReadWrite.as_str(), "readwrite");
        assert_eq!(Colour::default(), Colour::Red);
        assert!(Colour::Red < Colour::DarkBlue);
    }
}
