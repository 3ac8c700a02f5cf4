//! The friendly, syntactic half of the layout check: is the item a `#[repr(C)]`, non-generic,
//! non-packed, non-empty struct whose fields can live in shared memory?
//!
//! These checks see only tokens, so they catch what is written (`bool`, `&T`, `Vec<T>`), not
//! what an alias or a macro hides. The generated code repeats the check at the type level
//! (zerocopy's `FromBytes`/`IntoBytes` derives and const asserts), which nothing slips past.

use proc_macro2::Group;
use quote::ToTokens;
use syn::{
    Attribute, Fields, GenericArgument, GenericParam, Item, ItemStruct, PathArguments, Type,
    TypePath,
};

/// Every error found so far, reported together (serde's `Ctxt`, without the drop bomb).
#[derive(Default)]
pub(crate) struct Errors {
    /// The errors combined in the order they were found.
    combined: Option<syn::Error>,
}

impl Errors {
    /// Records `error` after the others.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.combined {
            Some(combined) => combined.combine(error),
            None => self.combined = Some(error),
        }
    }

    /// `Ok` when nothing was recorded, otherwise every error.
    pub(crate) fn finish(self) -> syn::Result<()> {
        match self.combined {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Every error recorded so far followed by `last`.
    pub(crate) fn ending_with(mut self, last: syn::Error) -> syn::Error {
        self.push(last);
        self.combined.unwrap_or(last_resort())
    }
}

/// Never returned in practice ([`Errors::ending_with`] always has an error); avoids a panic path.
fn last_resort() -> syn::Error {
    syn::Error::new(
        proc_macro2::Span::call_site(),
        "invalid `#[shared_memory]` item",
    )
}

/// Checks that `item` is a struct `#[shared_memory]` can share and returns it, or every error.
pub(crate) fn item(item: &Item) -> syn::Result<&ItemStruct> {
    let strukt = match item {
        Item::Struct(strukt) => strukt,
        Item::Enum(item) => return Err(syn::Error::new_spanned(
            item.enum_token,
            "`#[shared_memory]` applies to a struct, not an enum: an enum's discriminant is not \
                 valid for every byte pattern another process may write; use a `#[repr(C)]` struct \
                 with an integer tag field",
        )),
        Item::Union(item) => {
            return Err(syn::Error::new_spanned(
                item.union_token,
                "`#[shared_memory]` applies to a struct, not a union; use a `#[repr(C)]` struct",
            ))
        }
        Item::Fn(item) => {
            return Err(syn::Error::new_spanned(
                item.sig.fn_token,
                "`#[shared_memory]` applies to a `#[repr(C)]` struct, not a function",
            ))
        }
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "`#[shared_memory]` applies only to a `#[repr(C)]` struct",
            ))
        }
    };
    let mut errors = Errors::default();
    generics(strukt, &mut errors);
    repr(strukt, &mut errors);
    derives(&strukt.attrs, &mut errors);
    not_empty(strukt, &mut errors);
    for field in &strukt.fields {
        conditional_field(&field.attrs, &mut errors);
        field_type(&field.ty, &mut errors);
    }
    padding(strukt, &mut errors);
    errors.finish().map(|()| strukt)
}

/// Size and alignment of a field type whose layout the macro can know from its tokens alone:
/// fixed-size integers, floats and their atomics, and arrays of them with literal lengths.
/// `None` for anything else (`usize` depends on the target, `u128`'s alignment too, and other
/// types are unknown here); the type-level check covers those.
fn known_layout(ty: &Type) -> Option<(u64, u64)> {
    match ty {
        Type::Paren(p) => known_layout(&p.elem),
        Type::Group(g) => known_layout(&g.elem),
        Type::Array(array) => {
            let (size, align) = known_layout(&array.elem)?;
            let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Int(n),
                ..
            }) = &array.len
            else {
                return None;
            };
            Some((size.checked_mul(n.base10_parse::<u64>().ok()?)?, align))
        }
        Type::Path(path) => {
            let size = match last_ident(path)?.as_str() {
                "u8" | "i8" | "AtomicU8" | "AtomicI8" => 1,
                "u16" | "i16" | "AtomicU16" | "AtomicI16" => 2,
                "u32" | "i32" | "f32" | "AtomicU32" | "AtomicI32" => 4,
                "u64" | "i64" | "f64" | "AtomicU64" | "AtomicI64" => 8,
                _ => return None,
            };
            Some((size, size))
        }
        _ => None,
    }
}

/// Padding, found from the tokens when every field's layout is known (see [`known_layout`]):
/// says where the gap is and what field to add. Structs with other field types, or with
/// `align(N)` or `packed` (reported on its own), are left to the type-level check.
fn padding(strukt: &ItemStruct, errors: &mut Errors) {
    let aligned = strukt.attrs.iter().any(|a| {
        let repr = a.to_token_stream().to_string();
        a.path().is_ident("repr") && (repr.contains("align") || repr.contains("packed"))
    });
    let Some(layouts) = strukt
        .fields
        .iter()
        .map(|f| known_layout(&f.ty))
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    if aligned || layouts.is_empty() {
        return;
    }
    let name = &strukt.ident;
    let field_name = |i: usize, f: &syn::Field| {
        f.ident
            .as_ref()
            .map_or_else(|| i.to_string(), ToString::to_string)
    };
    let (mut offset, mut max_align) = (0u64, 1u64);
    let mut previous: Option<String> = None;
    for (i, (field, (size, align))) in strukt.fields.iter().zip(layouts).enumerate() {
        let start = offset.next_multiple_of(align);
        if start > offset {
            let gap = start - offset;
            let after = previous
                .as_deref()
                .map_or(String::new(), |p| format!(" after `{p}`"));
            errors.push(syn::Error::new_spanned(
                field,
                format!(
                    "`{name}` has {gap} byte(s) of padding{after} (offsets {offset}..{start}), before `{f}`, which \
                     `#[shared_memory]` rejects: padding bytes are never initialised, so they would leak into \
                     shared memory; add `pub _pad{i}: [u8; {gap}]` before `{f}`, or order the fields from the \
                     largest alignment down",
                    f = field_name(i, field),
                ),
            ));
        }
        offset = start + size;
        max_align = max_align.max(align);
        previous = Some(field_name(i, field));
    }
    let end = offset.next_multiple_of(max_align);
    if end > offset {
        let gap = end - offset;
        errors.push(syn::Error::new_spanned(
            &strukt.ident,
            format!(
                "`{name}` has {gap} byte(s) of trailing padding (offsets {offset}..{end}) after `{p}`, which \
                 `#[shared_memory]` rejects: padding bytes are never initialised, so they would leak into \
                 shared memory; add `pub _pad: [u8; {gap}]` as the last field",
                p = previous.unwrap_or_default(),
            ),
        ));
    }
}

/// The struct must not have lifetime, type or const parameters, nor a `where` clause.
fn generics(strukt: &ItemStruct, errors: &mut Errors) {
    let name = &strukt.ident;
    for param in &strukt.generics.params {
        let message = match param {
            GenericParam::Lifetime(_) => format!(
                "`{name}` cannot have lifetime parameters: a shared struct cannot borrow, since an \
                 address is meaningless in another process; remove the lifetime and store values"
            ),
            GenericParam::Type(_) | GenericParam::Const(_) => format!(
                "`{name}` cannot have generic parameters: its key, layout and fingerprint are fixed \
                 once per struct; use concrete types (declare one struct per instantiation)"
            ),
        };
        errors.push(syn::Error::new_spanned(param, message));
    }
    if let Some(clause) = &strukt.generics.where_clause {
        if strukt.generics.params.is_empty() {
            errors.push(syn::Error::new_spanned(
                clause,
                format!("`{name}` cannot have a `where` clause; remove it"),
            ));
        }
    }
}

/// The largest alignment a shared struct may have, in bytes: the page size. `shmat(2)` maps a
/// segment at a page boundary and promises nothing more, so a struct aligned above it could be
/// misaligned in one process's mapping. 4096 is the smallest page size of the platforms we run
/// on, so the bound holds everywhere.
pub(crate) const MAX_ALIGN: u64 = 4096;

/// What the `#[repr(...)]` attributes of an item say, as far as the checks care.
#[derive(Default)]
pub(crate) struct Repr {
    /// Whether `C` is among them.
    pub(crate) c: bool,
    /// Every `packed` or `packed(N)`, by its path.
    pub(crate) packed: Vec<syn::Path>,
    /// Every `align(N)`: its path and its parenthesised argument.
    pub(crate) align: Vec<(syn::Path, Group)>,
}

/// Reads every `#[repr(...)]` among `attrs`. A malformed `repr` is rustc's to report; only what
/// parses is looked at.
pub(crate) fn parse_repr(attrs: &[Attribute]) -> Repr {
    let mut repr = Repr::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("repr")) {
        let _ = attr.parse_nested_meta(|meta| {
            let args = if meta.input.peek(syn::token::Paren) {
                Some(meta.input.parse::<Group>()?)
            } else {
                None
            };
            if meta.path.is_ident("C") {
                repr.c = true;
            } else if meta.path.is_ident("packed") {
                repr.packed.push(meta.path);
            } else if let (true, Some(args)) = (meta.path.is_ident("align"), args) {
                repr.align.push((meta.path, args));
            }
            Ok(())
        });
    }
    repr
}

/// The struct needs `#[repr(C)]` and must not be packed. `align(N)` is allowed up to
/// [`MAX_ALIGN`] (any padding it adds is rejected by the padding check).
fn repr(strukt: &ItemStruct, errors: &mut Errors) {
    let name = &strukt.ident;
    let repr = parse_repr(&strukt.attrs);
    for packed in &repr.packed {
        errors.push(syn::Error::new_spanned(
            packed,
            format!(
                "`{name}` must not be `packed`: its fields could be unaligned, which makes \
                 atomics and references to fields unsound; remove `packed` and add explicit \
                 `_pad` fields instead"
            ),
        ));
    }
    for (path, args) in &repr.align {
        align(name, path, args, errors);
    }
    if !repr.c {
        errors.push(syn::Error::new_spanned(
            &strukt.ident,
            format!(
                "`{name}` needs `#[repr(C)]`: the default `repr(Rust)` layout is unspecified and may \
                 differ between builds, so two processes could disagree on field offsets; add \
                 `#[repr(C)]` to the struct"
            ),
        ));
    }
}

/// `align(N)` (`path` and its parenthesised `args`) must not exceed [`MAX_ALIGN`]. An `N` that
/// is not an integer literal, or not a power of two, is rustc's to report.
fn align(name: &syn::Ident, path: &syn::Path, args: &Group, errors: &mut Errors) {
    let Ok(n) = syn::parse2::<syn::LitInt>(args.stream()) else {
        return;
    };
    // An `N` too large for a `u128` is larger than the page size too.
    if n.base10_parse::<u128>()
        .is_ok_and(|n| n <= u128::from(MAX_ALIGN))
    {
        return;
    }
    let written = format!("align({})", n.base10_digits());
    errors.push(syn::Error::new_spanned(
        quote::quote!(#path #args),
        format!(
            "`#[shared_memory]` structs may be aligned to at most {MAX_ALIGN} bytes (the page \
             size): `{written}` is too large for `{name}`, since a shared memory segment is only \
             guaranteed to be mapped at a page boundary; lower it to `align({MAX_ALIGN})` or less"
        ),
    ));
}

/// The zerocopy traits are derived by the attribute; deriving them again would conflict.
fn derives(attrs: &[Attribute], errors: &mut Errors) {
    const DERIVED: [&str; 4] = ["FromBytes", "IntoBytes", "FromZeros", "TryFromBytes"];
    for attr in attrs.iter().filter(|a| a.path().is_ident("derive")) {
        let _ = attr.parse_nested_meta(|meta| {
            if let Some(last) = meta.path.segments.last() {
                if DERIVED.iter().any(|d| last.ident == d) {
                    errors.push(syn::Error::new_spanned(
                        &meta.path,
                        format!(
                            "`#[shared_memory]` already implements `{}` for this struct; remove it \
                             from `#[derive(...)]`",
                            last.ident
                        ),
                    ));
                }
            }
            Ok(())
        });
    }
}

/// A field behind `#[cfg]` or `#[cfg_attr]` would make two builds of the same struct disagree on
/// its layout, and the generated size checks and schema list every field as written.
fn conditional_field(attrs: &[Attribute], errors: &mut Errors) {
    for attr in attrs {
        if attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr") {
            errors.push(syn::Error::new_spanned(
                attr,
                "a field of a shared struct cannot be conditional: builds with different `cfg`s \
                 would disagree on the layout of the same object; declare the field \
                 unconditionally",
            ));
        }
    }
}

/// A zero-sized struct has nothing to share. Catches the obvious cases: no fields, or only
/// zero-length arrays and markers; the generated const assert catches the rest.
fn not_empty(strukt: &ItemStruct, errors: &mut Errors) {
    let name = &strukt.ident;
    let message = format!(
        "`{name}` is zero-sized: a shared object needs at least one field that holds data; add one, \
         e.g. `pub value: u64`"
    );
    match &strukt.fields {
        Fields::Unit => errors.push(syn::Error::new_spanned(&strukt.ident, message)),
        fields if fields.iter().all(|f| obviously_zero_sized(&f.ty)) => {
            errors.push(syn::Error::new_spanned(fields, message));
        }
        _ => {}
    }
}

/// `[T; 0]`, `()`, `PhantomData<T>` and `PhantomPinned`, as written.
fn obviously_zero_sized(ty: &Type) -> bool {
    match ty {
        Type::Array(array) => is_literal_zero(&array.len) || obviously_zero_sized(&array.elem),
        Type::Tuple(tuple) => tuple.elems.iter().all(obviously_zero_sized),
        Type::Paren(paren) => obviously_zero_sized(&paren.elem),
        Type::Group(group) => obviously_zero_sized(&group.elem),
        Type::Path(path) => matches!(
            last_ident(path).as_deref(),
            Some("PhantomData" | "PhantomPinned")
        ),
        _ => false,
    }
}

/// Whether `len` is the integer literal `0` (in any base, with any suffix).
fn is_literal_zero(len: &syn::Expr) -> bool {
    match len {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(int),
            ..
        }) => int.base10_parse::<u128>().is_ok_and(|n| n == 0),
        _ => false,
    }
}

/// The last segment's name of a path type without a `<T as Trait>::` qualifier.
fn last_ident(ty: &TypePath) -> Option<String> {
    if ty.qself.is_some() {
        return None;
    }
    ty.path.segments.last().map(|s| s.ident.to_string())
}

/// Records an error for a field type that cannot live in shared memory, looking through arrays
/// and parentheses. Other types are left to the type-level check.
pub(crate) fn field_type(ty: &Type, errors: &mut Errors) {
    const ADDRESS: &str = "an address is meaningless in another process";
    let message = match ty {
        Type::Array(array) => return field_type(&array.elem, errors),
        Type::Paren(paren) => return field_type(&paren.elem, errors),
        Type::Group(group) => return field_type(&group.elem, errors),
        Type::Reference(_) => format!(
            "a reference cannot live in shared memory: {ADDRESS}; store the value itself"
        ),
        Type::Ptr(_) => format!(
            "a raw pointer cannot live in shared memory: {ADDRESS}; store an index or an offset \
             into the shared struct instead"
        ),
        Type::BareFn(_) => format!(
            "a function pointer cannot live in shared memory: {ADDRESS} (or another binary); store \
             an integer tag and dispatch on it"
        ),
        Type::TraitObject(_) | Type::ImplTrait(_) => format!(
            "a trait object cannot live in shared memory: it carries a vtable pointer and {ADDRESS}; \
             use a concrete type"
        ),
        Type::Slice(_) => "a slice is unsized and cannot be a field of a shared struct; use an \
                           array `[T; N]`"
            .to_owned(),
        Type::Tuple(tuple) if !tuple.elems.is_empty() => "a tuple has the unspecified `repr(Rust)` \
                                                          layout; use an array or a `#[repr(C)]` \
                                                          struct"
            .to_owned(),
        Type::Path(path) => match path_message(path) {
            Some(message) => message,
            None => return,
        },
        _ => return,
    };
    errors.push(syn::Error::new_spanned(ty, message));
}

/// The message for a named type that cannot live in shared memory, if it is one.
fn path_message(path: &TypePath) -> Option<String> {
    const HEAP: &str = "points into the heap of the process that allocated it, and an address is \
                        meaningless in another process";
    let name = last_ident(path)?;
    let message = match name.as_str() {
        "bool" => "`bool` is not valid for every byte pattern another process may write; use `u8` \
                   (0 or 1)"
            .to_owned(),
        "char" => {
            "`char` is not valid for every byte pattern another process may write (surrogates \
                   and values above `0x10FFFF` are not chars); use `u32`"
                .to_owned()
        }
        "AtomicBool" => "`AtomicBool` is not valid for every byte pattern another process may \
                         write; use `AtomicU8` (0 or 1)"
            .to_owned(),
        "Option" => format!(
            "`Option<{}>` is not valid for every byte pattern another process may write (its \
             discriminant, or the niche of its payload); use the plain value and a separate `u8` \
             flag",
            generic_arg(path).unwrap_or_else(|| "T".to_owned())
        ),
        "Box" | "Rc" | "Arc" | "Weak" => format!("`{name}` {HEAP}; store the value inline"),
        "Vec" | "VecDeque" | "HashMap" | "BTreeMap" | "HashSet" | "BTreeSet" => {
            format!("`{name}` {HEAP}; use a fixed-size array `[T; N]` and a length field")
        }
        "String" | "CString" | "OsString" | "PathBuf" | "Cow" => {
            format!("`{name}` {HEAP}; use a fixed-size byte array `[u8; N]` and a length field")
        }
        nonzero if nonzero.starts_with("NonZero") => format!(
            "`{nonzero}` is not valid for every byte pattern another process may write (zero is \
             invalid); use the plain integer type"
        ),
        _ => return None,
    };
    Some(message)
}

/// The first generic argument of the path's last segment, as written.
fn generic_arg(path: &TypePath) -> Option<String> {
    let PathArguments::AngleBracketed(args) = &path.path.segments.last()?.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(ty) => Some(ty.to_token_stream().to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::item;
    use quote::quote;
    use syn::Item;

    /// Checks `tokens` and returns the error messages (empty when the item is accepted).
    fn messages(tokens: proc_macro2::TokenStream) -> Vec<String> {
        let parsed: Item = syn::parse2(tokens).expect("test item parses");
        match item(&parsed) {
            Ok(_) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    /// Asserts that `tokens` fail with exactly one error containing `needle`.
    fn single_error(tokens: proc_macro2::TokenStream, needle: &str) {
        let messages = messages(tokens);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains(needle), "{messages:?}");
    }

    #[test]
    fn accepts_plain_repr_c_structs() {
        let ok = [
            quote! {
                #[repr(C)]
                #[derive(Clone, Copy)]
                pub struct Telemetry { pub seq: u64, pub pos: [f64; 3], status: u32, _pad: u32 }
            },
            quote! { #[repr(C)] struct Tuple(u32, [u8; 4]); },
            quote! { #[repr(C, align(8))] struct Aligned { a: u64 } },
            quote! { #[repr(align(8))] #[repr(C)] struct Split { a: u64 } },
            quote! {
                #[repr(C)]
                struct Atomics { a: core::sync::atomic::AtomicU64, b: AtomicU32, c: [AtomicU8; 4] }
            },
            quote! { #[repr(C)] struct Marker { a: u8, m: core::marker::PhantomData<bool> } },
        ];
        for tokens in ok {
            assert_eq!(messages(tokens.clone()), Vec::<String>::new(), "{tokens}");
        }
    }

    #[test]
    fn rejects_items_that_are_not_structs() {
        single_error(quote! { #[repr(C)] enum E { A } }, "not an enum");
        single_error(quote! { #[repr(C)] union U { a: u32 } }, "not a union");
        single_error(quote! { fn f() {} }, "not a function");
        single_error(
            quote! { type T = u32; },
            "applies only to a `#[repr(C)]` struct",
        );
    }

    #[test]
    fn rejects_generics() {
        single_error(
            quote! { #[repr(C)] struct S<T> { a: T } },
            "generic parameters",
        );
        single_error(
            quote! { #[repr(C)] struct S<const N: usize> { a: [u8; N] } },
            "generic",
        );
        single_error(
            quote! { #[repr(C)] struct S<'a> { a: [u8; 4], b: PhantomData<&'a u8> } },
            "lifetime",
        );
        single_error(
            quote! { #[repr(C)] struct S where u8: Copy { a: u8 } },
            "`where` clause",
        );
    }

    #[test]
    fn requires_repr_c_without_packed() {
        single_error(quote! { struct S { a: u32 } }, "needs `#[repr(C)]`");
        single_error(
            quote! { #[repr(transparent)] struct S { a: u32 } },
            "needs `#[repr(C)]`",
        );
        single_error(
            quote! { #[repr(C, packed)] struct S { a: u32 } },
            "must not be `packed`",
        );
        single_error(
            quote! { #[repr(C, packed(2))] struct S { a: u32 } },
            "must not be `packed`",
        );
        let both = messages(quote! { #[repr(packed)] struct S { a: u32 } });
        assert_eq!(both.len(), 2, "{both:?}");
    }

    #[test]
    fn rejects_alignment_above_the_page_size() {
        single_error(
            quote! { #[repr(C, align(8192))] struct S { a: [u8; 8192] } },
            "`align(8192)` is too large for `S`",
        );
        single_error(
            quote! { #[repr(align(1_048_576))] #[repr(C)] struct S { a: u64 } },
            "`align(1048576)` is too large",
        );
        single_error(
            quote! { #[repr(C, align(340282366920938463463374607431768211456))] struct S { a: u64 } },
            "at most 4096 bytes",
        );
        let page = messages(quote! { #[repr(C, align(4096))] struct S { a: [u8; 4096] } });
        assert_eq!(page, Vec::<String>::new());
        // Not an integer: rustc reports it.
        assert!(messages(quote! { #[repr(C, align(N))] struct S { a: u64 } }).is_empty());
    }

    #[test]
    fn rejects_zerocopy_derives_it_adds_itself() {
        single_error(
            quote! { #[repr(C)] #[derive(Clone, zerocopy::FromBytes)] struct S { a: u32 } },
            "already implements `FromBytes`",
        );
    }

    #[test]
    fn rejects_zero_sized_structs() {
        single_error(quote! { #[repr(C)] struct S; }, "zero-sized");
        single_error(quote! { #[repr(C)] struct S {} }, "zero-sized");
        single_error(quote! { #[repr(C)] struct S(); }, "zero-sized");
        single_error(
            quote! { #[repr(C)] struct S { a: [u64; 0], b: () } },
            "zero-sized",
        );
        assert!(messages(quote! { #[repr(C)] struct S { a: [u64; 1] } }).is_empty());
    }

    #[test]
    fn rejects_field_types_that_cannot_be_shared() {
        let cases = [
            (quote!(&'static u32), "a reference"),
            (quote!(&'static mut u32), "a reference"),
            (quote!(*const u8), "a raw pointer"),
            (quote!(*mut u8), "a raw pointer"),
            (quote!(fn(u32) -> u32), "a function pointer"),
            (quote!(Box<u32>), "`Box` points into the heap"),
            (quote!(Vec<u32>), "`Vec` points into the heap"),
            (quote!(std::string::String), "`String` points into the heap"),
            (quote!(Rc<u32>), "`Rc`"),
            (quote!(std::sync::Arc<u32>), "`Arc`"),
            (quote!(bool), "`bool` is not valid for every byte pattern"),
            (quote!(char), "use `u32`"),
            (quote!(Option<u32>), "`Option<u32>` is not valid"),
            (quote!([bool; 4]), "`bool`"),
            (quote!([[char; 2]; 2]), "`char`"),
            (quote!(AtomicBool), "use `AtomicU8`"),
            (quote!(core::num::NonZeroU32), "zero is invalid"),
            (quote!((u32, u32)), "a tuple"),
            (quote!([u8]), "a slice"),
            (quote!(Box<dyn Fn()>), "`Box`"),
        ];
        for (ty, needle) in cases {
            single_error(quote! { #[repr(C)] struct S { a: u64, b: #ty } }, needle);
        }
    }

    #[test]
    fn rejects_conditional_fields() {
        single_error(
            quote! { #[repr(C)] struct S { a: u64, #[cfg(unix)] b: u64 } },
            "cannot be conditional",
        );
        assert!(messages(quote! { #[repr(C)] struct S { #[doc = "x"] a: u64 } }).is_empty());
    }

    #[test]
    fn reports_every_error_at_once() {
        let all = messages(quote! {
            #[repr(packed)]
            struct S<T> { a: bool, b: &'static T, c: Vec<u8> }
        });
        assert_eq!(all.len(), 6, "{all:?}");
    }
}
