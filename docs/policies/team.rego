# The team's policy: only `ca`, built from github.com/workos/case by Bun with one of
# the reviewed Bun executables, from a clean tree (the build's own edits are accepted
# as its provenance, nothing typed with --allow-modified), reproduced. It runs only
# with a scripted model or one served on this machine, and only with the network rules
# enforced by the kernel.
#
#   cto-ledger policy add docs/policies/team.rego --on admit --on run
package cto.team

import rego.v1

# What was admitted: the admission itself, or a run's provider admission (its graph as
# the ledger knows it now).
subject := input if input.kind == "admission"

subject := input.provider.admission if input.kind == "run"

# The SHA-256 of each Bun executable the team reviewed (`sha256sum $(command -v bun)`).
reviewed_bun := {"sha256:0000000000000000000000000000000000000000000000000000000000000000"}

repositories := {"https://github.com/workos/case", "https://github.com/workos/case.git"}

default allow := false

allow if count(deny) == 0

deny contains msg if {
	subject.candidate.name != "ca"
	msg := sprintf("only `ca` is admitted, not `%s`", [subject.candidate.name])
}

default source_url := null

source_url := subject.source.url

deny contains msg if {
	not source_url in repositories
	msg := sprintf("source %v is not github.com/workos/case", [source_url])
}

deny contains "no recorded build made these bytes" if subject.build == null

deny contains msg if {
	subject.build != null
	some t in subject.build.tools
	t.name == "bun"
	not t.sha256 in reviewed_bun
	msg := sprintf("bun %v (%v) is not a reviewed Bun", [t.version, t.sha256])
}

ran_bun if {
	some t in subject.build.tools
	t.name == "bun"
}

deny contains "the build did not run bun" if {
	subject.build != null
	not ran_bun
}

deny contains msg if {
	some m in subject.allowed_modified
	m.by != "build"
	msg := sprintf("%s is not the recorded build's own edit (%s); rebuild from a clean tree", [m.path, m.by])
}

deny contains msg if {
	subject.build != null
	not subject.build.reproduced
	msg := sprintf("build %s was never reproduced", [subject.build.id])
}

deny contains "the run's provider is not admitted" if {
	input.kind == "run"
	input.provider.admission == null
}

deny contains msg if {
	input.kind == "run"
	input.provider.admission.revoked
	msg := sprintf("admission %s of the provider is revoked", [input.provider.admission.id])
}

# Models: a scripted one (its script's digest is admitted), or one served on loopback.
local_endpoint(url) if regex.match(`^https?://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]+)?(/.*)?$`, url)

model_allowed if input.model.provider == "scripted"

model_allowed if {
	is_string(input.model.endpoint)
	local_endpoint(input.model.endpoint)
}

deny contains msg if {
	input.kind == "run"
	not model_allowed
	msg := sprintf("model %s/%s at %v is neither scripted nor served on this machine", [input.model.provider, input.model.model, input.model.endpoint])
}

# The network rules: the provider connects only where it is let, and to no socket
# outside its sandbox.
network_rules := {"tcp", "abstract_unix_sockets"}

deny contains "the provider would run unconfined (--no-sandbox)" if {
	input.kind == "run"
	not input.sandbox.enabled
}

deny contains msg if {
	input.kind == "run"
	some r in input.sandbox.rules
	r.rule in network_rules
	not r.enforced
	msg := sprintf("network rule %s is %s", [r.rule, r.by])
}
