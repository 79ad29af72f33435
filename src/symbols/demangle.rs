//! Human-readable names from mangled symbols: Rust (legacy `_ZN…17h…E` and v0
//! `_R…`) and C++ (Itanium `_Z…`). Anything else is returned as is.

/// Demangle `name`; Rust hashes are dropped (`{:#}`), as backtraces print them.
///
/// Rust is tried first: rustc-demangle rejects Itanium C++ names (they do not
/// end in the `E` that closes a Rust path), while a C++ demangler would
/// happily turn Rust's legacy names into `_$LT$...` noise.
pub fn demangle(name: &str) -> String {
    if name.starts_with("_R") || name.starts_with("_ZN") {
        if let Ok(d) = rustc_demangle::try_demangle(name) {
            return format!("{d:#}");
        }
    }
    if name.starts_with("_Z") {
        if let Ok(sym) = cpp_demangle::Symbol::new(name) {
            let opts = cpp_demangle::DemangleOptions::new().no_params();
            if let Ok(s) = sym.demangle_with_options(&opts) {
                return s;
            }
        }
    }
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::demangle;

    #[test]
    fn rust_legacy_and_v0() {
        assert_eq!(
            demangle("_ZN4core3ptr13drop_in_place17h0123456789abcdefE"),
            "core::ptr::drop_in_place"
        );
        assert_eq!(
            demangle("_RNvNtCs1234_4core3ptr13drop_in_place"),
            "core::ptr::drop_in_place"
        );
    }

    #[test]
    fn cpp_and_plain() {
        assert_eq!(demangle("_ZN3foo3barEv"), "foo::bar");
        assert_eq!(demangle("_ZNSt6thread4joinEv"), "std::thread::join");
        assert_eq!(demangle("pthread_mutex_lock"), "pthread_mutex_lock");
        assert_eq!(demangle("_Z"), "_Z");
    }
}
