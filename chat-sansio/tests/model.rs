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
