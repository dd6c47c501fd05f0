//! Live config: on SIGHUP the server reads its `--config` file again and
//! hands the new policy ([`ChatInput::Policy`]) and rate limits
//! ([`ChatInput::Limits`], the command line's still winning) to the running
//! chat, which swaps them without dropping connections. A file that does
//! not load leaves the old config in force, and one line says why. README,
//! "Live config (SIGHUP)".

use std::path::{Path, PathBuf};

use async_signal::{Signal, Signals};
use chat_sansio::chat::ChatInput;
use futures_lite::StreamExt;
use transport_h2::InputSender;

use crate::config::LimitFlags;
use crate::{config, say};

/// SIGHUP, caught from now on (call it before announcing the server, so a
/// SIGHUP right after cannot kill it: its default action ends the process).
pub fn hangup_signals() -> std::io::Result<Signals> {
    Signals::new([Signal::Hup])
}

/// Reloads `path` on each SIGHUP until the server is gone; without a path
/// there is nothing to reload, and each SIGHUP says so.
pub async fn reload_on_hangup(
    name: &str,
    path: Option<PathBuf>,
    flags: LimitFlags,
    mut signals: Signals,
    inputs: InputSender<ChatInput>,
) {
    while let Some(Ok(_)) = signals.next().await {
        let Some(path) = &path else {
            say(format_args!("{name}: SIGHUP: no --config to reload"));
            continue;
        };
        if !reload(name, path, flags, &inputs).await {
            return;
        }
    }
}

/// Loads the file and hands it over, policy and limits together or
/// neither; false if the server is gone.
async fn reload(
    name: &str,
    path: &Path,
    flags: LimitFlags,
    inputs: &InputSender<ChatInput>,
) -> bool {
    let loaded = config::load(path).and_then(|p| Ok((p, flags.resolve(Some(path))?)));
    match loaded {
        Ok((policy, limits)) => {
            let (users, rooms) = (policy.user_count(), policy.room_count());
            if !inputs.send(ChatInput::Policy(Box::new(policy))).await
                || !inputs.send(ChatInput::Limits(limits)).await
            {
                return false;
            }
            say(format_args!(
                "{name}: config reloaded: {users} users, {rooms} rooms; \
                 limits: {} messages/s (burst {}), {} joins/s (burst {}) (0: none)",
                limits.messages_per_second,
                limits.message_burst,
                limits.joins_per_second,
                limits.join_burst
            ));
        }
        Err(e) => say(format_args!(
            "{name}: config not reloaded, the old one stays in force: {e}"
        )),
    }
    true
}
