//! Parsing `#[shared_memory(path = "...", id = 'x', mode = 0o...)]` into a [`Configuration`].
//!
//! Every argument error is collected (unknown key, duplicate key, bad value, missing key) and
//! reported together, each spanned on the offending token. Only a syntax error that makes the
//! rest unreadable (a key without `= value`, a value that is not an expression) stops early.

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Expr, ExprLit, Lit, LitChar, LitInt, LitStr};

use crate::check::Errors;

/// The key file argument: `path = "/absolute/file"`.
const PATH: &str = "path";
/// The project id argument: `id = 'a'`.
const ID: &str = "id";
/// The permission bits argument: `mode = 0o660`.
const MODE: &str = "mode";
/// Every accepted key, in the order the error message lists them.
const ACCEPTED: &str = "`path`, `id`, `mode`";

/// The permission bits a segment may be created with: read and write for user, group, other.
const MODE_MASK: u32 = 0o666;
/// The mode used when `mode` is absent: read and write for the owner only.
pub(crate) const DEFAULT_MODE: u32 = 0o600;

/// The smallest accepted id. The counter segment uses `id - 58`, so `'A'` maps to 7.
const ID_MIN: char = 'A';
/// The largest accepted id. The counter segment uses `id - 58`, so `'z'` maps to 64 < `'A'`.
const ID_MAX: char = 'z';

/// The validated arguments of one `#[shared_memory(...)]`.
#[derive(Debug)]
pub(crate) struct Configuration {
    /// The key file, an absolute path without NUL bytes; the literal keeps the user's span.
    pub(crate) path: LitStr,
    /// The project id, in `b'A'..=b'z'`.
    pub(crate) id: u8,
    /// The permission bits, within `0o666`.
    pub(crate) mode: u32,
}

/// The arguments as they are being read: each slot is filled at most once.
#[derive(Default)]
struct Builder {
    /// `path`, once seen and valid.
    path: Slot<LitStr>,
    /// `id`, once seen and valid.
    id: Slot<u8>,
    /// `mode`, once seen and valid.
    mode: Slot<u32>,
    /// Every error found so far.
    errors: Errors,
}

/// One argument's state. `Invalid` remembers that the key was given (so it is neither reported
/// missing nor accepted a second time) even though its value was rejected.
#[derive(Default)]
enum Slot<T> {
    /// Not given.
    #[default]
    Absent,
    /// Given, with a value that was rejected (the error is already recorded).
    Invalid,
    /// Given and valid.
    Valid(T),
}

impl<T> Slot<T> {
    /// Whether the key was given at all.
    fn is_present(&self) -> bool {
        !matches!(self, Slot::Absent)
    }
}

/// Parses the attribute's arguments, reporting every error at once.
pub(crate) fn parse(args: TokenStream) -> syn::Result<Configuration> {
    let mut builder = Builder::default();
    match syn::meta::parser(|meta| builder.argument(&meta)).parse2(args) {
        Ok(()) => builder.finish(),
        // The rest of the arguments is unreadable: report what was found up to the syntax
        // error, but not "missing" keys that may well be written after it.
        Err(error) => Err(builder.errors.ending_with(error)),
    }
}

impl Builder {
    /// Reads one `key = value` argument. Returns `Err` only for syntax errors; value errors are
    /// recorded and parsing goes on.
    fn argument(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let key = &meta.path;
        if key.is_ident(PATH) {
            fill(&mut self.path, &mut self.errors, meta, PATH, parse_path)
        } else if key.is_ident(ID) {
            fill(&mut self.id, &mut self.errors, meta, ID, parse_id)
        } else if key.is_ident(MODE) {
            fill(&mut self.mode, &mut self.errors, meta, MODE, parse_mode)
        } else {
            let name = quote::ToTokens::to_token_stream(key)
                .to_string()
                .replace(' ', "");
            self.errors.push(syn::Error::new_spanned(
                key,
                format!("unknown argument `{name}`; expected one of {ACCEPTED}"),
            ));
            // Skip the value, if any, so the following arguments are still checked.
            if meta.input.peek(syn::Token![=]) {
                value(meta)?;
            }
            Ok(())
        }
    }

    /// Checks that the required keys were given and returns the configuration, or every error.
    fn finish(mut self) -> syn::Result<Configuration> {
        if !self.path.is_present() {
            self.errors.push(syn::Error::new(
                Span::call_site(),
                "missing `path` argument; add `path = \"/absolute/key/file\"` to `#[shared_memory(...)]`",
            ));
        }
        if !self.id.is_present() {
            self.errors.push(syn::Error::new(
                Span::call_site(),
                "missing `id` argument; add a char in `'A'..='z'`, e.g. `id = 'a'`, to `#[shared_memory(...)]`",
            ));
        }
        self.errors.finish()?;
        match (self.path, self.id, self.mode) {
            (Slot::Valid(path), Slot::Valid(id), Slot::Valid(mode)) => {
                Ok(Configuration { path, id, mode })
            }
            (Slot::Valid(path), Slot::Valid(id), Slot::Absent) => Ok(Configuration {
                path,
                id,
                mode: DEFAULT_MODE,
            }),
            // An `Invalid` slot always comes with a recorded error, so `finish` returned above.
            _ => Err(syn::Error::new(
                Span::call_site(),
                "invalid `#[shared_memory(...)]` arguments",
            )),
        }
    }
}

/// Reads the `= value` part of an argument as an expression.
fn value(meta: &ParseNestedMeta<'_>) -> syn::Result<Expr> {
    meta.value()?.parse()
}

/// Reads the value of the argument `name` into `slot` with `parse`, recording a duplicate or an
/// invalid value in `errors`.
fn fill<T>(
    slot: &mut Slot<T>,
    errors: &mut Errors,
    meta: &ParseNestedMeta<'_>,
    name: &str,
    parse: fn(&Expr) -> syn::Result<T>,
) -> syn::Result<()> {
    let value = value(meta)?;
    if slot.is_present() {
        errors.push(syn::Error::new_spanned(
            &meta.path,
            format!("duplicate `{name}` argument; give it once"),
        ));
    } else {
        *slot = match parse(&value) {
            Ok(value) => Slot::Valid(value),
            Err(error) => {
                errors.push(error);
                Slot::Invalid
            }
        };
    }
    Ok(())
}

/// Returns the literal inside `expr`, if `expr` is a bare literal.
fn literal(expr: &Expr) -> Option<&Lit> {
    match expr {
        Expr::Lit(ExprLit { lit, attrs }) if attrs.is_empty() => Some(lit),
        _ => None,
    }
}

/// `path` must be a string literal holding an absolute path without NUL bytes.
fn parse_path(expr: &Expr) -> syn::Result<LitStr> {
    let Some(Lit::Str(lit)) = literal(expr) else {
        return Err(syn::Error::new_spanned(
            expr,
            "`path` must be a string literal, e.g. `path = \"/tmp/telemetry\"`",
        ));
    };
    let value = lit.value();
    if !value.starts_with('/') {
        return Err(syn::Error::new_spanned(
            lit,
            format!(
                "`path` must be absolute (start with `/`): a relative path names a different file, \
                 and so a different object, in each working directory; write `\"/{value}\"` or another absolute path"
            ),
        ));
    }
    if value.contains('\0') {
        return Err(syn::Error::new_spanned(
            lit,
            "`path` must not contain a NUL byte; the key file is passed to `ftok` as a C string",
        ));
    }
    Ok(lit.clone())
}

/// `id` must be a char literal in `'A'..='z'`.
fn parse_id(expr: &Expr) -> syn::Result<u8> {
    let Some(Lit::Char(lit)) = literal(expr) else {
        return Err(syn::Error::new_spanned(
            expr,
            "`id` must be a char literal in `'A'..='z'`, e.g. `id = 'a'`",
        ));
    };
    let value = lit.value();
    if !(ID_MIN..=ID_MAX).contains(&value) {
        return Err(id_out_of_range(lit));
    }
    // In range, so ASCII: the conversion is exact.
    Ok(value as u8)
}

/// The error for a char literal outside `'A'..='z'`.
fn id_out_of_range(lit: &LitChar) -> syn::Error {
    syn::Error::new_spanned(
        lit,
        format!(
            "`id` must be in `'{ID_MIN}'..='{ID_MAX}'`: the object's counter segment uses the key \
             `ftok(path, id - 58)`, so an id outside this range could collide with another object's \
             counter; pick a letter such as `'a'`"
        ),
    )
}

/// `mode` must be an integer literal with no bits outside `0o666` and the owner's read and
/// write bits.
fn parse_mode(expr: &Expr) -> syn::Result<u32> {
    let Some(Lit::Int(lit)) = literal(expr) else {
        return Err(syn::Error::new_spanned(
            expr,
            "`mode` must be an integer literal, e.g. `mode = 0o660`",
        ));
    };
    let mode = lit.base10_parse::<u32>().map_err(|_| bad_mode_bits(lit))?;
    if mode & !MODE_MASK != 0 {
        return Err(bad_mode_bits(lit));
    }
    if mode & 0o600 != 0o600 {
        return Err(syn::Error::new_spanned(
            lit,
            "`mode` must hold the owner's read and write bits (`0o600`): without them the \
             creating process itself could not attach; use e.g. `mode = 0o600` or `0o660`",
        ));
    }
    Ok(mode)
}

/// The error for a mode with bits outside `0o666`.
fn bad_mode_bits(lit: &LitInt) -> syn::Error {
    syn::Error::new_spanned(
        lit,
        "`mode` may only hold read and write permission bits (within `0o666`): a segment has no \
         execute, setuid, setgid or sticky bit; use e.g. `mode = 0o660`",
    )
}

#[cfg(test)]
mod tests {
    use super::{parse, Configuration, DEFAULT_MODE};
    use proc_macro2::TokenStream;
    use quote::quote;

    /// Parses `tokens` and returns the configuration or panics with the errors.
    fn ok(tokens: TokenStream) -> Configuration {
        match parse(tokens) {
            Ok(config) => config,
            Err(error) => panic!("unexpected error: {error}"),
        }
    }

    /// Parses `tokens`, expects errors and returns their messages in order.
    fn errors(tokens: TokenStream) -> Vec<String> {
        match parse(tokens) {
            Ok(config) => panic!("unexpected success: {config:?}"),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    /// Asserts that `tokens` fail with exactly one error containing `needle`.
    fn single_error(tokens: TokenStream, needle: &str) {
        let messages = errors(tokens);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains(needle), "{messages:?}");
    }

    #[test]
    fn accepts_path_and_id_with_default_mode() {
        let config = ok(quote!(path = "/tmp/telemetry", id = 'a'));
        assert_eq!(config.path.value(), "/tmp/telemetry");
        assert_eq!(config.id, b'a');
        assert_eq!(config.mode, DEFAULT_MODE);
    }

    #[test]
    fn accepts_mode_in_any_base_and_order() {
        let config = ok(quote!(mode = 0o660, id = 'Z', path = "/x",));
        assert_eq!(config.mode, 0o660);
        assert_eq!(config.id, b'Z');
        assert_eq!(ok(quote!(path = "/x", id = 'A', mode = 432)).mode, 0o660);
        assert_eq!(
            ok(quote!(path = "/x", id = 'z', mode = 0o666u32)).mode,
            0o666
        );
    }

    #[test]
    fn rejects_missing_keys() {
        assert_eq!(errors(quote!()).len(), 2);
        single_error(quote!(id = 'a'), "missing `path`");
        single_error(quote!(path = "/x"), "missing `id`");
    }

    #[test]
    fn rejects_unknown_key_listing_accepted_ones() {
        single_error(
            quote!(path = "/x", id = 'a', size = 4),
            "unknown argument `size`; expected one of `path`, `id`, `mode`",
        );
        single_error(
            quote!(path = "/x", id = 'a', readonly),
            "unknown argument `readonly`",
        );
    }

    #[test]
    fn rejects_duplicate_keys() {
        single_error(
            quote!(path = "/x", id = 'a', path = "/y"),
            "duplicate `path`",
        );
        single_error(quote!(path = "/x", id = 'a', id = 'b'), "duplicate `id`");
        single_error(
            quote!(path = "/x", id = 'a', mode = 0o600, mode = 0o600),
            "duplicate `mode`",
        );
    }

    #[test]
    fn rejects_bad_path() {
        single_error(
            quote!(path = 42, id = 'a'),
            "`path` must be a string literal",
        );
        single_error(
            quote!(path = PATH, id = 'a'),
            "`path` must be a string literal",
        );
        single_error(quote!(path = "tmp/x", id = 'a'), "`path` must be absolute");
        single_error(quote!(path = "", id = 'a'), "`path` must be absolute");
        single_error(quote!(path = "/a\0b", id = 'a'), "NUL byte");
    }

    #[test]
    fn rejects_bad_id() {
        single_error(quote!(path = "/x", id = "a"), "`id` must be a char literal");
        single_error(quote!(path = "/x", id = 97), "`id` must be a char literal");
        single_error(quote!(path = "/x", id = '0'), "ftok(path, id - 58)");
        single_error(quote!(path = "/x", id = '@'), "`id` must be in `'A'..='z'`");
        single_error(quote!(path = "/x", id = '{'), "`id` must be in `'A'..='z'`");
        single_error(quote!(path = "/x", id = 'é'), "`id` must be in `'A'..='z'`");
    }

    #[test]
    fn rejects_bad_mode() {
        single_error(
            quote!(path = "/x", id = 'a', mode = "0o600"),
            "integer literal",
        );
        for (mode, expected) in [
            (quote!(0o777), "within `0o666`"),
            (quote!(0o4600), "within `0o666`"),
            (quote!(99_999_999_999), "within `0o666`"),
            (quote!(0o060), "owner's read and write bits"),
            (quote!(0o466), "owner's read and write bits"),
        ] {
            single_error(quote!(path = "/x", id = 'a', mode = #mode), expected);
        }
    }

    #[test]
    fn reports_every_error_at_once() {
        let messages = errors(quote!(path = "rel", id = '1', mode = 0o777, colour = 3));
        assert_eq!(messages.len(), 4, "{messages:?}");
    }

    #[test]
    fn stops_at_syntax_errors() {
        let messages = errors(quote!(path "/x", id = 'a'));
        assert!(!messages.is_empty());
    }
}
