//! man/lockdump.1 is generated from the clap definition; this test fails when
//! the checked-in page is stale. Regenerate with:
//! `UPDATE_MAN=1 cargo test --test manpage`.

use clap::CommandFactory;

fn render() -> String {
    let cmd = lockdump::cli::Cli::command();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut buf).expect("render man page");
    String::from_utf8(buf).expect("man page is UTF-8")
}

#[test]
fn man_page_is_up_to_date() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man/lockdump.1");
    let fresh = render();
    if std::env::var_os("UPDATE_MAN").is_some() {
        std::fs::write(&path, &fresh).expect("write man page");
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "man/lockdump.1 is stale: run `UPDATE_MAN=1 cargo test --test manpage` and commit the result"
    );
}
