//! The model of `Server<Chat>` (`chat_sansio::model`, which documents every
//! invariant it checks) under random runs: the same model, operations and
//! decoding as the fuzz target `fuzz/fuzz_targets/server.rs`, fed random
//! bytes by proptest instead of libFuzzer's, on stable.
//!
//! The strategy is bytes decoded by `arbitrary` (`Scenario::from_bytes`), not
//! a second generator written for proptest: the derive that feeds the fuzzer
//! is the only description of the operations, so the two cannot drift
//! apart, and any fuzz input replays here. A failure prints the decoded
//! scenario; proptest shrinks it through the bytes.

use chat_sansio::model::{self, Scenario};
use proptest::prelude::*;

fn scenario() -> impl Strategy<Value = Scenario> {
    prop::collection::vec(any::<u8>(), 0..6000).prop_map(|bytes| Scenario::from_bytes(&bytes))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1024,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_model_holds(scenario in scenario()) {
        model::run(scenario);
    }
}

/// Not a test: a tool. Runs random scenarios from a seed (`MODEL_SEED`,
/// default 1; `MODEL_RUNS`, default 2000) until one fails, shrinks it by
/// dropping operations while it fails with the same message, and prints the
/// setup and the operations left, which reads better than proptest's
/// shrunk bytes:
/// `MODEL_SEED=7 cargo test -p chat-sansio --test model explore -- --ignored --nocapture`.
#[test]
#[ignore]
fn explore() {
    use std::sync::{Arc, Mutex};
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (mut x, runs) = (env("MODEL_SEED", 1) | 1, env("MODEL_RUNS", 2000));
    let last = Arc::new(Mutex::new(String::new()));
    let hook_last = last.clone();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let at = info.location().map(|l| l.to_string()).unwrap_or_default();
        *hook_last.lock().unwrap() = format!("{at}: {msg}");
    }));
    let fails = |scenario: &Scenario| -> Option<String> {
        let s = scenario.clone();
        std::panic::catch_unwind(move || model::run(s))
            .err()
            .map(|_| last.lock().unwrap().clone())
    };
    let same = |a: &str, b: &str| a.split(": ").next() == b.split(": ").next();
    for run in 0..runs {
        let bytes: Vec<u8> = (0..4000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut scenario = Scenario::from_bytes(&bytes);
        let Some(failure) = fails(&scenario) else {
            continue;
        };
        // Drop chunks of operations, then single ones, while it still fails
        // at the same place.
        let mut chunk = scenario.ops.len() / 2;
        while chunk > 0 {
            let mut i = 0;
            while i < scenario.ops.len() {
                let mut fewer = scenario.clone();
                let end = (i + chunk).min(fewer.ops.len());
                fewer.ops.drain(i..end);
                match fails(&fewer) {
                    Some(f) if same(&f, &failure) => scenario = fewer,
                    _ => i += chunk,
                }
            }
            chunk /= 2;
        }
        let failure = fails(&scenario).unwrap_or(failure);
        let _ = std::panic::take_hook();
        eprintln!("run {run} failed: {failure}\n{:?}", scenario.setup);
        if std::env::var_os("EXPLORE_TRACE").is_some() {
            // The model prints every output while this is set.
            std::env::set_var("MODEL_TRACE", "1");
            let s = scenario.clone();
            let _ = std::panic::catch_unwind(move || {
                model::run_traced(s, |i, op| eprintln!("  {i}: {op:?}"))
            });
        } else {
            for (i, op) in scenario.ops.iter().enumerate() {
                eprintln!("  {i}: {op:?}");
            }
        }
        panic!("run {run} failed");
    }
}
