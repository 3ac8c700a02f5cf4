//! The schema of a struct: the `smobject::schema::Describe` impl that `#[shared_memory]`
//! generates for its struct and `#[derive(Describe)]` for a plain nested `#[repr(C)]` struct.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::{Item, ItemStruct, LitStr};

use crate::check::{self, Errors};

/// The hidden `const` holding the struct's `StructDef`, declared inside the generated
/// `const _: () = { ... };` block: `Describe::TYPE` and `SharedStruct::SCHEMA` borrow it (a
/// reference to a `const` item is promoted to `'static`).
pub(crate) const SCHEMA_CONST: &str = "__SMOBJECT_SCHEMA";

/// The schema items for `strukt`, to be placed inside a `const _: () = { ... };` block: the
/// hidden `const` [`SCHEMA_CONST`] (a `StructDef` with the struct's name, size, alignment and,
/// for every field in order, its name, `offset_of!` and its type's `Describe::TYPE`) and the
/// `Describe` impl pointing at it.
///
/// Each field's `<Ty as Describe>::TYPE` is spanned on the field's type, so a type without a
/// description is reported at the field, with the trait's `on_unimplemented` message.
pub(crate) fn schema(strukt: &ItemStruct) -> TokenStream {
    let name = &strukt.ident;
    let type_name = LitStr::new(&name.unraw().to_string(), name.span());
    let schema = syn::Ident::new(SCHEMA_CONST, Span::call_site());
    let fields = strukt.fields.iter().enumerate().map(|(index, field)| {
        let (field_name, member) = if let Some(ident) = &field.ident {
            (ident.unraw().to_string(), quote!(#ident))
        } else {
            let member = syn::Index::from(index);
            (format!("_{index}"), quote!(#member))
        };
        let ty = type_def(&field.ty);
        quote! {
            ::smobject::schema::FieldDef {
                name: #field_name,
                offset: ::core::mem::offset_of!(#name, #member),
                ty: #ty,
            }
        }
    });
    quote! {
        const #schema: ::smobject::schema::StructDef = ::smobject::schema::StructDef {
            name: #type_name,
            size: ::core::mem::size_of::<#name>(),
            align: ::core::mem::align_of::<#name>(),
            fields: &[#(#fields),*],
        };

        #[automatically_derived]
        impl ::smobject::schema::Describe for #name {
            const TYPE: ::smobject::schema::TypeDef = ::smobject::schema::TypeDef::Struct(&#schema);
        }
    }
}

/// `<ty as ::smobject::schema::Describe>::TYPE`, spanned from the type's first token to its last
/// so that an unsatisfied `Describe` bound underlines the whole field type.
fn type_def(ty: &syn::Type) -> TokenStream {
    let mut tokens = ty.to_token_stream().into_iter();
    let first = tokens.next().map_or_else(Span::call_site, |t| t.span());
    let last = tokens.last().map_or(first, |t| t.span());
    let open = quote_spanned!(first=> <);
    quote_spanned! {last=>
        #open #ty as ::smobject::schema::Describe>::TYPE
    }
}

/// Expands `#[derive(Describe)] item`: the schema items of [`schema`] in a
/// `const _: () = { ... };` block, or the errors.
///
/// The item must be a struct with `#[repr(C)]` (not packed) and no generics, and its fields
/// must pass the same syntactic checks as a `#[shared_memory]` struct's. When only the `repr`
/// is wrong the impl is generated anyway next to the error, so the struct's uses as a field do
/// not cascade into "has no smobject schema" errors.
pub(crate) fn derive(item: TokenStream) -> TokenStream {
    let strukt = match syn::parse2::<Item>(item) {
        Ok(Item::Struct(strukt)) => strukt,
        Ok(Item::Enum(item)) => return error(
            &item.enum_token,
            "`#[derive(smobject::Describe)]` applies to a `#[repr(C)]` struct, not an enum: an \
                 enum's discriminant is not valid for every byte pattern another process may \
                 write; use a `#[repr(C)]` struct with an integer tag field",
        ),
        Ok(Item::Union(item)) => {
            return error(
                &item.union_token,
                "`#[derive(smobject::Describe)]` applies to a `#[repr(C)]` struct, not a union; \
                 use a `#[repr(C)]` struct",
            )
        }
        Ok(other) => {
            return error(
                &other,
                "`#[derive(smobject::Describe)]` applies only to a `#[repr(C)]` struct",
            )
        }
        Err(e) => return e.to_compile_error(),
    };
    let name = &strukt.ident;
    let mut fatal = Errors::default();
    for param in &strukt.generics.params {
        fatal.push(syn::Error::new_spanned(
            param,
            format!(
                "`#[derive(smobject::Describe)]` does not support generic parameters: `{name}`'s \
                 schema describes one concrete layout; use concrete types (declare one struct \
                 per instantiation)"
            ),
        ));
    }
    if let (true, Some(clause)) = (
        strukt.generics.params.is_empty(),
        &strukt.generics.where_clause,
    ) {
        fatal.push(syn::Error::new_spanned(
            clause,
            format!(
                "`#[derive(smobject::Describe)]`: `{name}` cannot have a `where` clause; remove it"
            ),
        ));
    }
    for field in &strukt.fields {
        check::field_type(&field.ty, &mut fatal);
    }
    if let Err(e) = fatal.finish() {
        return e.to_compile_error();
    }
    let mut errors = Errors::default();
    let repr = check::parse_repr(&strukt.attrs);
    for packed in &repr.packed {
        errors.push(syn::Error::new_spanned(
            packed,
            format!(
                "`{name}` must not be `packed` to `#[derive(smobject::Describe)]`: its fields \
                 could be unaligned, which makes atomics and references to fields unsound; remove \
                 `packed` and add explicit `_pad` fields instead"
            ),
        ));
    }
    if !repr.c {
        errors.push(syn::Error::new_spanned(
            name,
            format!(
                "`{name}` needs `#[repr(C)]` to `#[derive(smobject::Describe)]`: the default \
                 `repr(Rust)` layout is unspecified and may differ between builds, so two \
                 processes could disagree on field offsets; add `#[repr(C)]` to the struct"
            ),
        ));
    }
    let errors = errors.finish().err().map(|e| e.to_compile_error());
    let schema = schema(&strukt);
    quote! {
        #errors
        const _: () = {
            #schema
        };
    }
}

/// `compile_error!(message)` spanned on `tokens`.
fn error(tokens: &dyn ToTokens, message: &str) -> TokenStream {
    syn::Error::new_spanned(tokens, message).to_compile_error()
}

#[cfg(test)]
mod tests {
    use super::derive;
    use quote::quote;

    #[test]
    fn describes_named_and_tuple_fields() {
        let out = derive(quote! {
            #[repr(C)]
            pub struct Vec3 { pub x: f64, r#type: [u32; 2] }
        })
        .to_string();
        for needle in [
            "impl :: smobject :: schema :: Describe for Vec3",
            "name : \"Vec3\"",
            "size : :: core :: mem :: size_of :: < Vec3 > ()",
            "name : \"x\" , offset : :: core :: mem :: offset_of ! (Vec3 , x) , ty : < f64 as :: smobject :: schema :: Describe > :: TYPE",
            "name : \"type\" , offset : :: core :: mem :: offset_of ! (Vec3 , r#type)",
            "< [u32 ; 2] as :: smobject :: schema :: Describe > :: TYPE",
            "TypeDef :: Struct (& __SMOBJECT_SCHEMA)",
        ] {
            assert!(out.contains(needle), "{needle} not in {out}");
        }
        assert!(!out.contains("compile_error"), "{out}");
        assert!(!out.contains("zerocopy"), "{out}");

        let tuple = derive(quote!(
            #[repr(C, align(8))]
            struct T(u32, u8);
        ))
        .to_string();
        assert!(
            tuple.contains("name : \"_0\" , offset : :: core :: mem :: offset_of ! (T , 0)"),
            "{tuple}"
        );
        assert!(
            tuple.contains("name : \"_1\" , offset : :: core :: mem :: offset_of ! (T , 1)"),
            "{tuple}"
        );
    }

    #[test]
    fn rejects_what_it_cannot_describe() {
        let errors = |tokens| {
            let out = derive(tokens).to_string();
            (out.matches("compile_error").count(), out)
        };
        let (n, out) = errors(quote!(
            struct S {
                a: u32,
            }
        ));
        assert_eq!(n, 1, "{out}");
        assert!(out.contains("needs `#[repr(C)]`"), "{out}");
        assert!(
            out.contains("impl :: smobject :: schema :: Describe for S"),
            "{out}"
        );
        let (n, out) = errors(quote!(
            #[repr(C, packed)]
            struct S {
                a: u32,
            }
        ));
        assert_eq!(n, 1, "{out}");
        assert!(out.contains("must not be `packed`"), "{out}");
        let (n, out) = errors(quote!(
            #[repr(C)]
            struct S<T, const N: usize> {
                a: [T; N],
            }
        ));
        assert_eq!(n, 2, "{out}");
        assert!(out.contains("does not support generic parameters"), "{out}");
        assert!(!out.contains("Describe for"), "{out}");
        let (n, out) = errors(quote!(
            #[repr(C)]
            struct S
            where
                u8: Copy,
            {
                a: u8,
            }
        ));
        assert_eq!(n, 1, "{out}");
        assert!(out.contains("`where` clause"), "{out}");
        let (n, out) = errors(quote!(
            #[repr(C)]
            struct S {
                a: bool,
                b: &'static u8,
            }
        ));
        assert_eq!(n, 2, "{out}");
        assert!(!out.contains("Describe for"), "{out}");
        let (n, out) = errors(quote!(
            #[repr(u8)]
            enum E {
                A,
            }
        ));
        assert_eq!(n, 1, "{out}");
        assert!(out.contains("not an enum"), "{out}");
        let (n, out) = errors(quote!(#[repr(C)] union U { a: u32 }));
        assert_eq!(n, 1, "{out}");
        assert!(out.contains("not a union"), "{out}");
    }
}
