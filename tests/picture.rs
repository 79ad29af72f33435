//! `--dot` and `--html` on the AB-BA fixture: the DOT renders with Graphviz
//! (`dot -Tsvg`, from scripts/setup-tools.sh), and the HTML report renders in
//! headless Chromium with the cycle visible: the screenshot has red (the
//! cycle's color) where the graph is, and is not blank.

mod common;

use std::process::Command;

use common::{c_fixture, fixture::output_with_timeout, run_lockdump, unique_path, Fixture, Variant, TIMEOUT};

fn abba() -> Fixture {
    Fixture::spawn_blocked(c_fixture("abba", Variant::Debug, &[]))
}

#[test]
fn dot_output_names_threads_and_locks_and_renders_with_graphviz() {
    let fx = abba();
    let out = run_lockdump(&["--dot", "-p", &fx.pid().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let dot = String::from_utf8(out.stdout).unwrap();
    let (pid, t1, t2, main) = (fx.pid(), fx.tid("t1"), fx.tid("t2"), fx.tid("main"));
    // Objects are numbered in address order (the join's futex, on t1's stack, last).
    let (ra, rb) = if fx.lock("lock_a") < fx.lock("lock_b") {
        ("r_0", "r_1")
    } else {
        ("r_1", "r_0")
    };
    let red = "color=\"#cc0000\", penwidth=3, style=filled, fillcolor=\"#ffe4e4\", fontcolor=\"#cc0000\"";
    for line in [
        "digraph lockdump {".to_string(),
        "  label=\"Found 1 deadlock (2 threads, 2 mutexes)\";".into(),
        format!("  subgraph cluster_p{pid} {{"),
        format!("    t_{pid}_{t1} [label=\"t1\\nTID {t1}\", shape=box, {red}];"),
        format!("    t_{pid}_{t2} [label=\"t2\\nTID {t2}\", shape=box, {red}];"),
        // The main thread's name is its comm, the program's name.
        format!("    t_{pid}_{main} [label=\"abba\\nTID {main}\", shape=box];"),
        format!(
            "  t_{pid}_{t1} -> {rb} [label=\"waits for (cycle)\", color=\"#cc0000\", fontcolor=\"#cc0000\", penwidth=3];"
        ),
        format!("  {rb} -> t_{pid}_{t2} [label=\"held by\", color=\"#cc0000\", fontcolor=\"#cc0000\", penwidth=3];"),
        format!("  {ra} -> t_{pid}_{t1} [label=\"held by\", color=\"#cc0000\", fontcolor=\"#cc0000\", penwidth=3];"),
        format!("  r_2 -> t_{pid}_{t1} [label=\"held by\"];"),
    ] {
        assert!(dot.lines().any(|l| l == line), "no line {line:?} in:\n{dot}");
    }
    for (r, lock) in [(ra, "lock_a"), (rb, "lock_b")] {
        let line = format!(
            "    {r} [label=\"mutex {lock}\\n{:#x}\", shape=ellipse, {red}];",
            fx.lock(lock)
        );
        assert!(dot.lines().any(|l| l == line), "no line {line:?} in:\n{dot}");
    }
    // main joins t1: a wait that is not part of the cycle, drawn plain.
    assert!(
        dot.contains(&format!("  t_{pid}_{main} -> r_2 [label=\"waits for\"];")),
        "{dot}"
    );

    let path = unique_path("abba.dot");
    std::fs::write(&path, &dot).unwrap();
    let mut c = Command::new("dot");
    c.arg("-Tsvg").arg(&path);
    let svg = output_with_timeout(c, TIMEOUT);
    assert!(
        svg.status.success(),
        "dot -Tsvg failed (install graphviz: scripts/setup-tools.sh): {}",
        String::from_utf8_lossy(&svg.stderr)
    );
    let svg = String::from_utf8(svg.stdout).unwrap();
    for text in [
        "t1",
        "t2",
        &format!("TID {t1}"),
        "mutex lock_a",
        "mutex lock_b",
        "held by",
        "waits for (cycle)",
    ] {
        assert!(svg.contains(&format!(">{text}<")), "Graphviz's SVG lacks text {text:?}");
    }
    assert!(
        svg.contains("stroke=\"#cc0000\""),
        "cycle edges are red in Graphviz's SVG"
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn html_report_is_self_contained_and_shows_the_cycle_in_chromium() {
    let fx = abba();
    // A name ending in .html: Chromium shows any other file:// as plain text.
    let dir = unique_path("html-report");
    std::fs::create_dir_all(&dir).unwrap();
    let html_path = dir.join("abba.html");
    let out = run_lockdump(&[
        "--json",
        "--html",
        html_path.to_str().unwrap(),
        "-p",
        &fx.pid().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    // Standard output is still the JSON document.
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(doc["verdict"]["kind"], "deadlock");
    let html = std::fs::read_to_string(&html_path).expect("HTML written");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<h1 class=\"deadlock\">Found 1 deadlock (2 threads, 2 mutexes)</h1>"));
    // Self-contained: no scripts, no links, no URL but the SVG namespace name.
    for banned in ["<script", "<link", "src=", "@import", "<img", "<iframe"] {
        assert!(!html.contains(banned), "HTML contains {banned:?}");
    }
    // url() only for the SVG's own arrowhead markers.
    let refs: std::collections::BTreeSet<&str> = html
        .match_indices("url(")
        .map(|(i, _)| &html[i..html[i..].find(')').map_or(html.len(), |e| i + e + 1)])
        .collect();
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        ["url(#endarrow)", "url(#startarrow)"]
    );
    let urls: Vec<&str> = html
        .match_indices("http")
        .map(|(i, _)| &html[i..(i + 26).min(html.len())])
        .collect();
    assert!(urls.iter().all(|u| *u == "http://www.w3.org/2000/svg"), "{urls:?}");
    // The SVG holds the thread and lock names; the text report follows it.
    let svg = &html[html.find("<svg").expect("inline SVG")..html.find("</svg>").expect("SVG end")];
    for text in [
        "t1",
        "t2",
        &format!("TID {}", fx.tid("t1")),
        "mutex lock_a",
        "mutex lock_b",
        "held by",
    ] {
        assert!(svg.contains(&format!(">{text}<")), "SVG lacks text {text:?}");
    }
    assert!(svg.contains("#cc0000"), "cycle drawn in red");
    // The text report, HTML-escaped.
    let line = format!(
        "  Thread {} &quot;t1&quot; waits for mutex lock_b ({:#x})",
        fx.tid("t1"),
        fx.lock("lock_b")
    );
    assert!(html.lines().any(|l| l.starts_with(&line)), "no line {line:?}");

    // Headless Chromium (Debian's chromium: scripts/setup-tools.sh).
    let png = html_path.with_extension("png");
    let profile = unique_path("chromium-profile");
    std::fs::create_dir_all(&profile).unwrap();
    let mut c = Command::new("chromium");
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1200,900",
    ]);
    c.arg(format!("--user-data-dir={}", profile.display()));
    c.arg(format!("--screenshot={}", png.display()));
    c.arg(format!("file://{}", html_path.display()));
    let shot = output_with_timeout(c, std::time::Duration::from_secs(180));
    assert!(
        shot.status.success() && png.is_file(),
        "chromium --headless --screenshot failed (install chromium: scripts/setup-tools.sh): {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().expect("PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("PNG size")];
    let info = reader.next_frame(&mut buf).expect("PNG frame");
    assert_eq!((info.width, info.height), (1200, 900));
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let first = pixels[0];
    let differing = pixels.iter().filter(|p| p[..3] != first[..3]).count();
    assert!(
        differing > 20_000,
        "screenshot nearly uniform: {differing} pixels differ from the first"
    );
    // The cycle's red (#cc0000 strokes, anti-aliased): strongly red pixels,
    // counted below the first 70 rows, where the (red) headline is: with an
    // empty SVG there would be none.
    let width = info.width as usize;
    let red = pixels[70 * width..]
        .iter()
        .filter(|p| p[0] > 150 && p[1] < 80 && p[2] < 80)
        .count();
    assert!(
        red > 1_500,
        "only {red} red pixels: the cycle is not visible in {}",
        png.display()
    );
    eprintln!(
        "screenshot: {} ({red} red pixels, {differing} non-background)",
        png.display()
    );
    let _ = std::fs::remove_dir_all(profile);
}
