//! The pipeline (parse, check, generate) and the generated code.
//!
//! On any error the user's item is emitted unchanged followed by one `compile_error!` per
//! error, so the struct still exists and the rest of the user's code does not cascade into
//! "cannot find type" errors.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Item, ItemStruct, LitByte, LitInt, LitStr};

use crate::args::{self, Configuration};
use crate::check::{self, Errors};
use crate::describe;

/// Expands `#[shared_memory(args)] item`.
pub(crate) fn shared_memory(args: TokenStream, item: &TokenStream) -> TokenStream {
    let config = args::parse(args);
    let parsed = syn::parse2::<Item>(item.clone());
    let checked = match &parsed {
        Ok(parsed) => check::item(parsed),
        Err(error) => Err(error.clone()),
    };
    match (config, checked) {
        (Ok(config), Ok(strukt)) => generate(&config, strukt),
        (config, checked) => {
            let mut errors = Errors::default();
            if let Err(error) = config {
                errors.push(error);
            }
            if let Err(error) = checked {
                errors.push(error);
            }
            let compile_errors = errors.finish().err().map(|e| e.to_compile_error());
            quote!(#item #compile_errors)
        }
    }
}

/// The trait impls, the constructors and the layout checks inside one `const _: () = { ... };`,
/// then the struct with the zerocopy derives added after its own attributes.
///
/// The checks come first: rustc reports the field bounds of the `Sealed` impl (spanned on each
/// field's type) before the zerocopy derives' errors about the same type (spanned on the
/// attribute). The schema (a hidden `StructDef` const and the `Describe` impl, see
/// [`describe::schema`]) follows; `SharedStruct::SCHEMA` borrows the same const.
fn generate(config: &Configuration, strukt: &ItemStruct) -> TokenStream {
    let name = &strukt.ident;
    let type_name = LitStr::new(&name.unraw().to_string(), name.span());
    let path = &config.path;
    let id = LitByte::new(config.id, path.span());
    let mode = LitInt::new(&format!("0o{:o}", config.mode), Span::call_site());
    let checks = layout_checks(strukt);
    let schema = describe::schema(strukt);
    let schema_const = syn::Ident::new(describe::SCHEMA_CONST, Span::call_site());
    let c_fields = c_fields(strukt);
    let constructors = constructors(config, strukt);
    quote! {
        const _: () = {
            #checks

            #schema

            impl ::smobject::SharedStruct for #name {
                const PATH: &'static str = #path;
                const ID: u8 = #id;
                const MODE: u32 = #mode;
                const TYPE_NAME: &'static str = #type_name;
                const SCHEMA: &'static ::smobject::schema::StructDef = &#schema_const;
                const C_FIELDS: &'static [::smobject::__private::CField] = &[#(#c_fields),*];
            }

            #constructors
        };

        #[derive(
            ::smobject::__private::zerocopy::FromBytes,
            ::smobject::__private::zerocopy::IntoBytes
        )]
        #[zerocopy(crate = "::smobject::__private::zerocopy")]
        #strukt
    }
}

/// The type-level half of the layout check, besides the zerocopy derives: the `Sealed` impl,
/// whose where clause requires every field to be `FromBytes + IntoBytes` (reported at the field
/// even when an alias or a macro hides its real type), and const asserts that the struct is not
/// zero-sized, has no padding and is aligned to at most the page size (spanned on its name;
/// the alignment assert catches a field type aligned above it, which the tokens cannot show).
///
/// Const evaluation runs after type checking, so the padding message comes after zerocopy's own
/// ("`T` has N total byte(s) of padding").
fn layout_checks(strukt: &ItemStruct) -> TokenStream {
    let name = &strukt.ident;
    let type_name = name.unraw().to_string();
    let zero_sized = format!(
        "`{type_name}` is zero-sized: a shared object needs at least one field that holds data"
    );
    let padding = format!(
        "`{type_name}` has padding bytes, which `#[shared_memory]` rejects: add an explicit `_pad` \
         field (e.g. `_pad: [u8; N]`) where the compiler inserts padding, or order the fields from \
         the largest alignment down; do not use `repr(packed)`"
    );
    let field_bounds = strukt.fields.iter().map(|field| {
        let ty = &field.ty;
        quote_spanned! {ty.span()=>
            #ty: ::smobject::__private::zerocopy::FromBytes
                + ::smobject::__private::zerocopy::IntoBytes,
        }
    });
    let over_aligned = format!(
        "`{type_name}` is aligned to more than {max} bytes (the page size), which \
         `#[shared_memory]` rejects: a shared memory segment is only guaranteed to be mapped at a \
         page boundary; lower the `align(N)` of the field type that raises it (or of the struct) \
         to `align({max})` or less",
        max = check::MAX_ALIGN,
    );
    let max_align = proc_macro2::Literal::u64_unsuffixed(check::MAX_ALIGN);
    // `check::item` rejected structs without fields, so the sum below is never empty.
    let field_types = strukt.fields.iter().map(|field| &field.ty);
    let asserts = quote_spanned! {name.span()=>
        const _: () = ::core::assert!(
            ::smobject::__private::assert_not_zero_sized(::core::mem::size_of::<#name>()),
            #zero_sized,
        );
        const _: () = ::core::assert!(
            ::core::mem::size_of::<#name>() == #(::core::mem::size_of::<#field_types>())+*,
            #padding,
        );
        const _: () = ::core::assert!(
            ::core::mem::align_of::<#name>() <= #max_align,
            #over_aligned,
        );
    };
    quote! {
        impl ::smobject::__private::Sealed for #name
        where
            #(#field_bounds)*
        {
        }

        #asserts
    }
}

/// One `CField` per field: its name, its C type, array dimensions (outermost first), offset
/// and size, for `smobject::c_header`. Offsets and sizes are consts computed by rustc, so the
/// header's `_Static_assert`s compare C's layout with the real one.
fn c_fields(strukt: &ItemStruct) -> Vec<TokenStream> {
    strukt
        .fields
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let ty = &field.ty;
            let (name, member) = if let Some(ident) = &field.ident {
                (ident.unraw().to_string(), quote!(#ident))
            } else {
                let member = syn::Index::from(index);
                (format!("_{index}"), quote!(#member))
            };
            let mut dims = Vec::new();
            let (c_type, atomic) = c_type(ty, &mut dims);
            quote! {
                ::smobject::__private::CField {
                    name: #name,
                    c_type: #c_type,
                    atomic: #atomic,
                    dims: &[#(#dims),*],
                    offset: ::core::mem::offset_of!(Self, #member),
                    size: ::core::mem::size_of::<#ty>(),
                }
            }
        })
        .collect()
}

/// The C element type of `ty` (an expression of type `&'static str`) and whether it is atomic,
/// pushing array lengths onto `dims`. Read from the tokens, as `check` does: primitives and
/// `Atomic*` by their last path segment, any other path as `struct <LastSegment>` (a nested
/// `#[repr(C)]` struct the C program declares too; a type alias is spelled as its own name, which
/// the header's size asserts then catch), anything else as opaque bytes.
fn c_type(ty: &syn::Type, dims: &mut Vec<TokenStream>) -> (TokenStream, bool) {
    match ty {
        syn::Type::Group(group) => c_type(&group.elem, dims),
        syn::Type::Paren(paren) => c_type(&paren.elem, dims),
        syn::Type::Array(array) => {
            let len = &array.len;
            dims.push(quote!(#len));
            c_type(&array.elem, dims)
        }
        syn::Type::Path(path) if path.qself.is_none() && !path.path.segments.is_empty() => {
            let last = path
                .path
                .segments
                .last()
                .map(|s| s.ident.unraw().to_string());
            let last = last.unwrap_or_default();
            let (base, atomic) = match last.strip_prefix("Atomic") {
                Some(rest) if c_primitive(&rest.to_lowercase()).is_some() => {
                    (rest.to_lowercase(), true)
                }
                _ => (last.clone(), false),
            };
            if let Some(spelling) = c_primitive(&base) {
                (spelling, atomic)
            } else {
                let spelling = format!("struct {last}");
                (quote!(#spelling), false)
            }
        }
        _ => {
            dims.push(quote!(::core::mem::size_of::<#ty>()));
            (quote!("uint8_t"), false)
        }
    }
}

/// The C spelling of a Rust primitive number type, if `name` is one.
fn c_primitive(name: &str) -> Option<TokenStream> {
    let spelling = match name {
        "u8" => "uint8_t",
        "u16" => "uint16_t",
        "u32" => "uint32_t",
        "u64" => "uint64_t",
        "i8" => "int8_t",
        "i16" => "int16_t",
        "i32" => "int32_t",
        "i64" => "int64_t",
        "u128" => "unsigned __int128",
        "i128" => "__int128",
        "f32" => "float",
        "f64" => "double",
        "usize" => return Some(quote!(::smobject::__private::C_USIZE)),
        "isize" => return Some(quote!(::smobject::__private::C_ISIZE)),
        _ => return None,
    };
    Some(quote!(#spelling))
}

/// `create`, `access` and `open_or_create`, with the struct's visibility.
fn constructors(config: &Configuration, strukt: &ItemStruct) -> TokenStream {
    let name = &strukt.ident;
    let vis = &strukt.vis;
    let type_name = name.unraw().to_string();
    let key = format!(
        "key file `{}`, id `'{}'`",
        config.path.value(),
        char::from(config.id)
    );
    let create_doc = format!(
        "Creates the shared `{type_name}` object ({key}); fails if a live one exists.\n\n\
         Generated by `#[shared_memory]`: calls `smobject::Shared::create_at` with this struct's \
         key.\n\n# Errors\n\nAs `smobject::Shared::create_at`, e.g. when the object already \
         exists or the key file is missing."
    );
    let access_doc = format!(
        "Attaches to the existing shared `{type_name}` object ({key}).\n\n\
         Generated by `#[shared_memory]`: calls `smobject::Shared::access_at` with this struct's \
         key.\n\n# Errors\n\nAs `smobject::Shared::access_at`, e.g. when the object does not \
         exist or was created with a different layout."
    );
    let open_or_create_doc = format!(
        "Attaches to the shared `{type_name}` object ({key}), creating it if it does not exist.\n\n\
         Generated by `#[shared_memory]`: calls `smobject::Shared::open_or_create_at` with this \
         struct's key.\n\n# Errors\n\nAs `smobject::Shared::open_or_create_at`."
    );
    quote! {
        impl #name {
            #[doc = #create_doc]
            #vis fn create() -> ::smobject::Result<::smobject::Shared<Self>> {
                ::smobject::Shared::<Self>::create_at(
                    <Self as ::smobject::SharedStruct>::PATH,
                    <Self as ::smobject::SharedStruct>::ID,
                )
            }

            #[doc = #access_doc]
            #vis fn access() -> ::smobject::Result<::smobject::Shared<Self>> {
                ::smobject::Shared::<Self>::access_at(
                    <Self as ::smobject::SharedStruct>::PATH,
                    <Self as ::smobject::SharedStruct>::ID,
                )
            }

            #[doc = #open_or_create_doc]
            #vis fn open_or_create() -> ::smobject::Result<::smobject::Shared<Self>> {
                ::smobject::Shared::<Self>::open_or_create_at(
                    <Self as ::smobject::SharedStruct>::PATH,
                    <Self as ::smobject::SharedStruct>::ID,
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shared_memory;
    use quote::quote;

    #[test]
    fn c_types_of_primitives_atomics_arrays_and_structs() {
        let c = |ty: syn::Type| {
            let mut dims = Vec::new();
            let (spelling, atomic) = super::c_type(&ty, &mut dims);
            let dims: Vec<String> = dims.iter().map(ToString::to_string).collect();
            (spelling.to_string(), atomic, dims.join(","))
        };
        let s = |x: &str| format!("{x:?}");
        assert_eq!(
            c(syn::parse_quote!(u64)),
            (s("uint64_t"), false, String::new())
        );
        assert_eq!(
            c(syn::parse_quote!([[f32; 4]; 3])),
            (s("float"), false, "3,4".into())
        );
        assert_eq!(
            c(syn::parse_quote!(core::sync::atomic::AtomicU32)),
            (s("uint32_t"), true, String::new())
        );
        assert_eq!(
            c(syn::parse_quote!([AtomicI8; 8])),
            (s("int8_t"), true, "8".into())
        );
        assert_eq!(
            c(syn::parse_quote!(crate::Vec3)),
            (s("struct Vec3"), false, String::new())
        );
        assert!(c(syn::parse_quote!(usize)).0.contains("C_USIZE"));
        assert!(c(syn::parse_quote!(AtomicIsize)).0.contains("C_ISIZE"));
    }

    #[test]
    fn emits_the_item_unchanged_with_every_error() {
        let item = quote!(
            struct S {
                a: bool,
            }
        );
        let out = shared_memory(quote!(id = '0'), &item).to_string();
        assert!(out.starts_with(&item.to_string()), "{out}");
        // missing `path`, bad `id`, missing `repr(C)`, `bool`
        assert_eq!(out.matches("compile_error").count(), 4, "{out}");
    }

    #[test]
    fn generates_the_trait_impl_and_constructors() {
        let out = shared_memory(
            quote!(path = "/tmp/t", id = 'a', mode = 0o660),
            &quote!(
                #[repr(C)]
                pub struct T {
                    a: u32,
                }
            ),
        )
        .to_string();
        for needle in [
            "zerocopy :: FromBytes",
            "const ID : u8 = b'a'",
            "const MODE : u32 = 0o660",
            "pub fn create ()",
            "pub fn access ()",
            "pub fn open_or_create ()",
            "const C_FIELDS",
            "name : \"a\" , c_type : \"uint32_t\" , atomic : false",
            "offset_of ! (Self , a)",
            ":: core :: mem :: align_of :: < T > () <= 4096",
            "impl :: smobject :: schema :: Describe for T",
            "name : \"a\" , offset : :: core :: mem :: offset_of ! (T , a) , ty : < u32 as :: smobject :: schema :: Describe > :: TYPE",
            "const SCHEMA : & 'static :: smobject :: schema :: StructDef = & __SMOBJECT_SCHEMA",
        ] {
            assert!(out.contains(needle), "{needle} not in {out}");
        }
        assert!(!out.contains("compile_error"), "{out}");
        assert!(!out.contains("FINGERPRINT"), "provided by the trait: {out}");
    }

    #[test]
    fn errors_generate_no_schema() {
        let out = shared_memory(
            quote!(path = "/tmp/t", id = 'a'),
            &quote!(
                #[repr(C)]
                struct S {
                    a: bool,
                }
            ),
        )
        .to_string();
        assert_eq!(out.matches("compile_error").count(), 1, "{out}");
        assert!(!out.contains("Describe"), "{out}");
    }
}
