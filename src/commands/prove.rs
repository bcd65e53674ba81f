//! `cto-ledger prove REF|SEQ [--size N]` and `prove --consistency OLD [NEW]`: RFC 9162
//! proofs against the signed checkpoints kept in the ledger, as JSON for `verify-proof`.

use super::{Context, Output};
use crate::error::{Error, Result};
use crate::ledger::Mode;
use crate::tlog;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The event to prove: a REF (as `show` takes) or an event number
    #[arg(value_name = "REF|SEQ", required_unless_present = "consistency")]
    target: Option<String>,
    /// Prove against the signed checkpoint of this tree size (default: the newest covering it)
    #[arg(long, value_name = "N", conflicts_with = "consistency")]
    size: Option<u64>,
    /// Prove that the tree of OLD events is a prefix of the signed tree of NEW (default: the newest)
    #[arg(long, num_args = 1..=2, value_names = ["OLD", "NEW"], conflicts_with = "target")]
    consistency: Option<Vec<u64>>,
}

pub(crate) fn run(cx: &Context, a: Args) -> Result<Output> {
    let home = cx.open(Mode::ReadOnly)?;
    let proof = match (&a.consistency, &a.target) {
        (Some(sizes), _) => tlog::prove_consistency(&home.ledger, sizes[0], sizes.get(1).copied())?,
        (None, Some(t)) => {
            let seq = match t.parse::<u64>() {
                Ok(n) => n,
                Err(_) => {
                    let node = home.resolve(t)?;
                    tlog::event_to_prove(&home.ledger, &node, a.size)?.ok_or_else(|| {
                        Error::bad_input(
                            format!("no journal event records {}", node.label()),
                            "prove an admission, build, run, source or file",
                        )
                    })?
                }
            };
            tlog::prove_inclusion(&home.ledger, seq, a.size)?
        }
        (None, None) => unreachable!("clap requires one"),
    };
    // The proof is a JSON document with or without --json.
    Ok(Output::raw(move |w| {
        serde_json::to_writer_pretty(&mut *w, &proof).map_err(std::io::Error::from)?;
        writeln!(w)?;
        Ok(())
    }))
}
