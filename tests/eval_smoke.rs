//! The evaluation smoke run (`make eval-smoke`, and part of `cargo test`): the
//! short built-in corpus through both detectors, checked against the committed
//! baseline `tests/data/eval/baseline.json` with its margins, and the NAB-like
//! family against `baseline-nab-like.json`. It fails on a
//! crash or a quality regression, never on time (docs/DETECTION.md, Evaluation).
#![cfg(not(target_arch = "wasm32"))]

use meterflow::core::config::Config;
use meterflow::eval::arms::Detector;
use meterflow::eval::corpus::{generate, Length};
use meterflow::eval::report::{check_baseline, evaluate, summary_table, Baseline};
use meterflow::eval::Series;

const BASELINE: &str = include_str!("data/eval/baseline.json");

#[test]
fn the_short_corpus_does_not_fall_below_the_baseline() {
    let base: Baseline = serde_json::from_str(BASELINE).expect("baseline.json parses");
    assert!(base.short, "the smoke baseline is of the short corpus");
    check_against(&base, &generate(base.seed, Length::Short));
}

const BASELINE_NAB_LIKE: &str = include_str!("data/eval/baseline-nab-like.json");

#[test]
fn the_nab_like_corpus_does_not_fall_below_its_baseline() {
    let base: Baseline = serde_json::from_str(BASELINE_NAB_LIKE).expect("baseline parses");
    assert_eq!(base.corpus, "nab-like");
    check_against(&base, &meterflow::eval::nab_like::generate(base.seed));
}

/// Both detectors over `corpus`, held to `base`.
fn check_against(base: &Baseline, corpus: &[Series]) {
    let mut figs = Vec::new();
    for d in [Detector::Meterflow, Detector::Zscore] {
        let (_, f) = evaluate(d, corpus, &Config::default()).expect("the corpus replays");
        figs.push(f);
    }
    println!("{}", summary_table(&figs));
    // The reference arm is fixed code on a fixed corpus: it must match exactly,
    // or the corpus itself changed and the baseline must be rewritten.
    let z = base.detectors.iter().find(|f| f.detector == "zscore");
    assert_eq!(
        z,
        figs.iter().find(|f| f.detector == "zscore"),
        "zscore figures moved: corpus changed?"
    );
    let problems = check_baseline(base, &figs);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
