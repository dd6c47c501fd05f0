//! Model-based fuzzing of `Server<Chat>`: arbitrary runs of driver
//! operations, checked after every operation by `chat_sansio::model`, which
//! documents the operations and every invariant it checks. The same model
//! runs on stable as the property test `chat-sansio/tests/model.rs`.

#![no_main]

use chat_sansio::model::{self, Scenario};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|scenario: Scenario| model::run(scenario));
