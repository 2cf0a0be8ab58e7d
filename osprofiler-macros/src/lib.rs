//! Attribute macros for [osprofiler-core](https://docs.rs/osprofiler-core): `#[trace]` on a
//! function (OSProfiler's `@profiler.trace`) and `#[trace_impl]` on an impl block
//! (OSProfiler's `@profiler.trace_cls`). Use them through `osprofiler_core::{trace, trace_impl}`.
//!
//! The generated code refers to `::osprofiler_core`, so the calling crate must depend on it.

#![cfg_attr(docsrs, feature(doc_cfg))]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{ToTokens, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Expr, ExprLit, FnArg, ImplItem, ItemFn, ItemImpl, Lit, Meta, Pat, ReturnType, Signature, Token,
    Type, Visibility,
};

#[derive(Clone)]
struct Options {
    name: Option<String>,
    hide_args: bool,
    hide_result: bool,
    trace_private: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            name: None,
            hide_args: false,
            hide_result: true,
            trace_private: false,
        }
    }
}

fn bool_value(meta: &Meta) -> syn::Result<bool> {
    match meta {
        Meta::Path(_) => Ok(true),
        Meta::NameValue(nv) => match &nv.value {
            Expr::Lit(ExprLit {
                lit: Lit::Bool(b), ..
            }) => Ok(b.value),
            other => Err(syn::Error::new(other.span(), "expected `true` or `false`")),
        },
        Meta::List(l) => Err(syn::Error::new(
            l.span(),
            "expected `flag` or `flag = true|false`",
        )),
    }
}

fn parse_options(attr: TokenStream2, allow_private: bool) -> syn::Result<Options> {
    let mut opts = Options::default();
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    for meta in metas {
        let key = meta
            .path()
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        match key.as_str() {
            "name" => match &meta {
                Meta::NameValue(nv) => match &nv.value {
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(s), ..
                    }) if !s.value().is_empty() => opts.name = Some(s.value()),
                    other => {
                        return Err(syn::Error::new(
                            other.span(),
                            "`name` takes a non-empty string, e.g. name = \"rpc\"",
                        ));
                    }
                },
                _ => {
                    return Err(syn::Error::new(
                        meta.span(),
                        "`name` takes a string, e.g. name = \"rpc\"",
                    ));
                }
            },
            "hide_args" => opts.hide_args = bool_value(&meta)?,
            "hide_result" => opts.hide_result = bool_value(&meta)?,
            "trace_private" if allow_private => opts.trace_private = bool_value(&meta)?,
            _ => {
                let known = if allow_private {
                    "name, hide_args, hide_result, trace_private"
                } else {
                    "name, hide_args, hide_result"
                };
                return Err(syn::Error::new(
                    meta.span(),
                    format!("unknown option `{key}`; expected one of: {known}"),
                ));
            }
        }
    }
    Ok(opts)
}

/// Traces every call of a function (sync or async) as a point.
///
/// Options: `name = "rpc"` (the point name; default: the function's name), `hide_args`
/// (do not record arguments), `hide_result = false` (record the returned value's `Debug`
/// text; hidden by default, as in OSProfiler).
///
/// Start info: `{"function": {"name": "<module path>::<fn>", "args": "(<Debug of each arg>,)",
/// "kwargs": "{}"}}` (`self` is left out). If the function returns a `Result` whose error
/// implements `Display`, an `Err` is recorded as `etype` (the error's type name) and `message`.
/// Nothing is formatted unless a trace is active. Arguments must implement `Debug` unless
/// `hide_args` is given.
#[proc_macro_attribute]
pub fn trace(attr: TokenStream, item: TokenStream) -> TokenStream {
    let result = parse_options(attr.into(), false).and_then(|opts| {
        let f: ItemFn = syn::parse(item)?;
        Ok(expand_fn(f, &opts, None))
    });
    result.unwrap_or_else(|e| e.to_compile_error()).into()
}

/// Traces the methods of an impl block (OSProfiler's `trace_cls`).
///
/// Options: those of `#[trace]`, plus `trace_private` (also trace methods that are not `pub`;
/// default false). Methods of a trait impl are always traced. Mark a method `#[no_trace]` to
/// leave it out; `const fn`s are left out.
#[proc_macro_attribute]
pub fn trace_impl(attr: TokenStream, item: TokenStream) -> TokenStream {
    let result = parse_options(attr.into(), true).and_then(|opts| {
        let mut imp: ItemImpl = syn::parse(item)?;
        let type_name = match &*imp.self_ty {
            Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
            _ => None,
        }
        .unwrap_or_else(|| imp.self_ty.to_token_stream().to_string().replace(' ', ""));
        let is_trait_impl = imp.trait_.is_some();
        for item in &mut imp.items {
            let ImplItem::Fn(method) = item else { continue };
            let before = method.attrs.len();
            method.attrs.retain(|a| !a.path().is_ident("no_trace"));
            let opted_out = method.attrs.len() != before;
            let public = is_trait_impl || !matches!(method.vis, Visibility::Inherited);
            if opted_out || method.sig.constness.is_some() || !(public || opts.trace_private) {
                continue;
            }
            let f = ItemFn {
                attrs: std::mem::take(&mut method.attrs),
                vis: method.vis.clone(),
                sig: method.sig.clone(),
                block: Box::new(method.block.clone()),
            };
            let expanded = expand_fn(f, &opts, Some(&type_name));
            let new: ImplItem = syn::parse2(expanded)?;
            *item = new;
        }
        Ok(imp.into_token_stream())
    });
    result.unwrap_or_else(|e| e.to_compile_error()).into()
}

fn args_expr(sig: &Signature, opts: &Options) -> TokenStream2 {
    if opts.hide_args {
        return quote!(::core::option::Option::None);
    }
    let items: Vec<TokenStream2> = sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Receiver(_) => None,
            FnArg::Typed(pt) => Some(match &*pt.pat {
                Pat::Ident(id) => {
                    let ident = &id.ident;
                    quote!(&#ident as &dyn ::core::fmt::Debug)
                }
                _ => quote!(&"_" as &dyn ::core::fmt::Debug),
            }),
        })
        .collect();
    quote!(::core::option::Option::Some(::osprofiler_core::__private::tuple(&[#(#items),*])))
}

fn contains_impl_trait(ty: &Type) -> bool {
    ty.to_token_stream()
        .into_iter()
        .any(|t| matches!(t, proc_macro2::TokenTree::Ident(i) if i == "impl"))
}

fn expand_fn(f: ItemFn, opts: &Options, type_name: Option<&str>) -> TokenStream2 {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = f;
    let fn_ident = sig.ident.to_string();
    let name = opts.name.clone().unwrap_or_else(|| fn_ident.clone());
    let qualified = match type_name {
        Some(t) => format!("{t}::{fn_ident}"),
        None => fn_ident,
    };
    let fn_name = quote!(::core::concat!(::core::module_path!(), "::", #qualified));
    let args = args_expr(&sig, opts);
    let ret_ty: Option<Type> = match &sig.output {
        ReturnType::Default => Some(syn::parse_quote!(())),
        ReturnType::Type(_, ty) if !contains_impl_trait(ty) => Some((**ty).clone()),
        ReturnType::Type(..) => None,
    };
    let annot = ret_ty.as_ref().map(|t| quote!(: #t));
    let annot_ref = ret_ty.as_ref().map(|t| quote!(: &#t));
    let show_result = (!opts.hide_result)
        .then(|| quote!(::osprofiler_core::__private::record_result(__osp_trace, __osp_out);));
    let record = quote! {
        #show_result
        {
            #[allow(unused_imports)]
            use ::osprofiler_core::__private::{ViaAny as _, ViaResult as _};
            (&::osprofiler_core::__private::Wrap(__osp_out)).__osp_record(__osp_trace);
        }
    };
    let span = Span::call_site();
    let body = if sig.asyncness.is_some() {
        quote_spanned_body_async(
            &name, &fn_name, &args, &block, annot, annot_ref, &record, span,
        )
    } else {
        quote! {
            let mut __osp_trace = ::osprofiler_core::__private::start_fn(#name, #fn_name, || #args);
            #[allow(clippy::redundant_closure_call)]
            let __osp_result #annot = (move || #block)();
            if __osp_trace.is_active() {
                let __osp_out = &__osp_result;
                let __osp_trace = &mut __osp_trace;
                #record
            }
            ::core::mem::drop(__osp_trace);
            __osp_result
        }
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn quote_spanned_body_async(
    name: &str,
    fn_name: &TokenStream2,
    args: &TokenStream2,
    block: &syn::Block,
    annot: Option<TokenStream2>,
    annot_ref: Option<TokenStream2>,
    record: &TokenStream2,
    _span: Span,
) -> TokenStream2 {
    quote! {
        let __osp_trace = ::osprofiler_core::__private::start_fn_detached(#name, #fn_name, || #args);
        let __osp_fut = async move {
            let __osp_r #annot = #block;
            __osp_r
        };
        ::osprofiler_core::__private::TracedFn::new(
            __osp_trace,
            __osp_fut,
            |__osp_out #annot_ref, __osp_trace: &mut ::osprofiler_core::Trace| { #record },
        )
        .await
    }
}

// The README's examples are compiled (and run, unless `no_run`) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
