//! Tool profiles: `--tools` serves only the named tools, `--read-only` serves only those
//! that read. A tool left out is neither listed nor callable; one left out for writing is
//! refused with a tool error that says why, so a model learns the deployment is read-only.

use std::collections::BTreeSet;

use rmcp::handler::server::router::tool::ToolRouter;

use crate::config::ToolProfile;

/// A `--tools` list naming a tool the server does not have.
#[derive(Debug, thiserror::Error)]
#[error("--tools: no tool named {unknown}; the tools are {known}")]
pub struct UnknownTools {
    unknown: String,
    known: String,
}

/// The tools a profile left out because they write (for a clear refusal).
#[derive(Debug, Clone, Default)]
pub(super) struct ReadOnlyRefusals(BTreeSet<String>);

impl ReadOnlyRefusals {
    pub(super) fn refuses(&self, tool: &str) -> bool {
        self.0.contains(tool)
    }
}

/// Removes from `router` what `profile` does not serve.
pub(super) fn apply<S: Send + Sync + 'static>(
    router: &mut ToolRouter<S>,
    profile: &ToolProfile,
) -> Result<ReadOnlyRefusals, UnknownTools> {
    let known: BTreeSet<String> = router.map.keys().map(|name| name.to_string()).collect();
    if let Some(only) = &profile.only {
        let unknown: Vec<&str> = only
            .iter()
            .filter(|name| !known.contains(name.as_str()))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(UnknownTools {
                unknown: unknown.join(", "),
                known: known.iter().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        for name in known.iter().filter(|name| !only.contains(name.as_str())) {
            router.remove_route(name);
        }
    }
    let mut refusals = ReadOnlyRefusals::default();
    if profile.read_only {
        let writers: Vec<String> = router
            .map
            .values()
            .filter(|route| {
                let reads = route
                    .attr
                    .annotations
                    .as_ref()
                    .and_then(|a| a.read_only_hint);
                reads != Some(true)
            })
            .map(|route| route.attr.name.to_string())
            .collect();
        for name in writers {
            router.remove_route(&name);
            refusals.0.insert(name);
        }
    }
    Ok(refusals)
}
