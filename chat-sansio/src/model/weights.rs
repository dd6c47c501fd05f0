//! How bytes become operations: weighted choices, so that the well-formed
//! cases are common and the odd ones (folded into one variant each) rare,
//! and even random bytes (proptest's, which no coverage guides) make most
//! requests accepted and runs deep.

use arbitrary::{Arbitrary, Result, Unstructured};

use super::ops::{
    ContentTypeChoice, Credential, Join, MsgId, Name, Operation, PathChoice, Post, Quirk, Rarely,
    RoomName, RuleChoice, TimeoutChoice,
};

/// Picks an index with the given weights, out of the range of `W` (`u8`
/// for coarse choices, `u16` for rare ones); what the weights leave over
/// goes to the last.
fn pick<'a, W>(u: &mut Unstructured<'a>, weights: &[W]) -> Result<usize>
where
    W: Arbitrary<'a> + Copy + PartialOrd + std::ops::Sub<Output = W>,
{
    let mut n = W::arbitrary(u)?;
    for (i, &w) in weights.iter().enumerate() {
        if n < w {
            return Ok(i);
        }
        n = n - w;
    }
    Ok(weights.len() - 1)
}

impl<'a> Arbitrary<'a> for Credential {
    /// Mostly guests and users; one time in sixteen a refused credential.
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let n = u8::arbitrary(u)?;
        Ok(match n % 32 {
            0 => Credential::UnknownToken,
            1 => Credential::NotBearer,
            2..=16 => Credential::Guest(n / 32 % 2),
            _ => Credential::User(n / 32 % 3),
        })
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (1, Some(1))
    }
}

impl<'a> Arbitrary<'a> for RuleChoice {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match pick::<u8>(u, &[160, 96])? {
            0 => RuleChoice::Open,
            _ => RuleChoice::Some {
                readers: u.arbitrary()?,
                posters: u.arbitrary()?,
                guests: u.arbitrary()?,
            },
        })
    }
}

impl<'a> Arbitrary<'a> for PathChoice {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match pick::<u8>(u, &[136, 64, 40, 16])? {
            0 => PathChoice::JoinChat,
            1 => PathChoice::JoinChatRoom,
            2 => PathChoice::History,
            _ => PathChoice::Other(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for ContentTypeChoice {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match pick::<u8>(u, &[210, 40, 6])? {
            0 => ContentTypeChoice::Grpc,
            1 => ContentTypeChoice::GrpcVariant(u.arbitrary()?),
            _ => ContentTypeChoice::NotGrpc(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for TimeoutChoice {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match pick::<u8>(u, &[140, 30, 10, 34, 34, 8])? {
            0 => TimeoutChoice::None,
            1 => TimeoutChoice::Millis(u.arbitrary()?),
            2 => TimeoutChoice::Micros(u.arbitrary()?),
            3 => TimeoutChoice::Seconds(u.arbitrary()?),
            4 => TimeoutChoice::Hours(u.arbitrary()?),
            _ => TimeoutChoice::Odd(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for Quirk {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match pick::<u8>(u, &[210, 20, 20, 6])? {
            0 => Quirk::None,
            1 => Quirk::EncodingIdentity,
            2 => Quirk::MixedCaseNames,
            _ => Quirk::Odd(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for Operation {
    /// Mostly opens, posts and joins; rarely a shutdown, which refuses every
    /// later request.
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        // Out of 65,536, in the order of the arms below.
        const WEIGHTS: [u16; 25] = [
            1024,  // Connect
            1024,  // Disconnect
            11264, // Open
            1024,  // Data
            4096,  // FramedChatMessage
            3072,  // FramedUser
            1536,  // FramedHistoryRequest
            2048,  // End
            1024,  // Reset
            512,   // Stalled
            1536,  // Advance
            1024,  // Timeout
            64,    // Shutdown
            2560,  // EngineOpen
            4608,  // EngineCommit
            768,   // EngineFailAppend
            2560,  // EngineRead
            768,   // EngineReplay
            2048,  // Foreign
            768,   // Report
            512,   // Trim
            1536,  // Drained
            1024,  // Settle
            12288, // a valid post
            3072,  // a valid join (and what the weights leave over)
        ];
        Ok(match pick(u, &WEIGHTS)? {
            0 => Operation::Connect {
                conn: u.arbitrary()?,
                with_peer: u.arbitrary()?,
            },
            1 => Operation::Disconnect {
                conn: u.arbitrary()?,
            },
            2 => Operation::Open {
                conn: u.arbitrary()?,
                call: u.arbitrary()?,
                headers: u.arbitrary()?,
            },
            3 => Operation::Data {
                call: u.arbitrary()?,
                bytes: u.arbitrary()?,
            },
            4 => Operation::FramedChatMessage {
                call: u.arbitrary()?,
                post: u.arbitrary()?,
                split: u.arbitrary()?,
            },
            5 => Operation::FramedUser {
                call: u.arbitrary()?,
                join: u.arbitrary()?,
                split: u.arbitrary()?,
            },
            6 => Operation::FramedHistoryRequest {
                call: u.arbitrary()?,
                room: u.arbitrary()?,
                before_seq: u.arbitrary()?,
                limit: u.arbitrary()?,
            },
            7 => Operation::End {
                call: u.arbitrary()?,
            },
            8 => Operation::Reset {
                call: u.arbitrary()?,
            },
            9 => Operation::Stalled {
                call: u.arbitrary()?,
            },
            10 => Operation::Advance {
                millis: u.arbitrary()?,
            },
            11 => Operation::Timeout {
                jump: u.arbitrary()?,
            },
            12 => Operation::Shutdown {
                grace_millis: u.arbitrary()?,
            },
            13 => Operation::EngineOpen {
                index: u.arbitrary()?,
                fail: u.arbitrary()?,
            },
            14 => Operation::EngineCommit {
                index: u.arbitrary()?,
                reported_first: u.arbitrary()?,
            },
            15 => Operation::EngineFailAppend {
                index: u.arbitrary()?,
                stored: u.arbitrary()?,
            },
            16 => Operation::EngineRead {
                index: u.arbitrary()?,
                ok: u8::arbitrary(u)? % 8 != 0,
            },
            17 => Operation::EngineReplay {
                index: u.arbitrary()?,
            },
            18 => Operation::Foreign {
                room: u.arbitrary()?,
                text: u.arbitrary()?,
                report: u.arbitrary()?,
            },
            19 => Operation::Report {
                reverse: u.arbitrary()?,
            },
            20 => Operation::Trim {
                room: u.arbitrary()?,
                keep: u.arbitrary()?,
            },
            21 => Operation::Drained {
                index: u.arbitrary()?,
            },
            22 => Operation::Settle,
            // The common cases again: a post and a join as a client sends them.
            23 => Operation::FramedChatMessage {
                call: u.arbitrary()?,
                post: Post {
                    user_id: Name::Mine,
                    username: Name::Mine,
                    text: u.arbitrary()?,
                    no_user: Rarely(false),
                    room: None,
                    too_long: Rarely(false),
                    client_msg_id: match u8::arbitrary(u)? % 4 {
                        0 => MsgId::None,
                        n => MsgId::Few(n),
                    },
                },
                split: u.arbitrary()?,
            },
            _ => Operation::FramedUser {
                call: u.arbitrary()?,
                join: Join {
                    user_id: Name::Mine,
                    username: Name::Mine,
                    room: u.arbitrary::<Option<u8>>()?.map(RoomName::Few),
                    too_long: Rarely(false),
                },
                split: u.arbitrary()?,
            },
        })
    }
}
