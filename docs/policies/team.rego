# The team's admission policy: only `ca`, built from github.com/workos/case by Bun
# with one of the reviewed Bun executables, from a clean tree (the build's own edits
# are accepted as its provenance, nothing typed with --allow-modified), reproduced.
package cto.team

import rego.v1

# The SHA-256 of each Bun executable the team reviewed (`sha256sum $(command -v bun)`).
reviewed_bun := {"sha256:0000000000000000000000000000000000000000000000000000000000000000"}

repositories := {"https://github.com/workos/case", "https://github.com/workos/case.git"}

default allow := false

allow if count(deny) == 0

deny contains msg if {
	input.candidate.name != "ca"
	msg := sprintf("only `ca` is admitted, not `%s`", [input.candidate.name])
}

deny contains msg if {
	not input.source.url in repositories
	msg := sprintf("source %v is not github.com/workos/case", [input.source.url])
}

deny contains "no recorded build made these bytes" if input.build == null

deny contains msg if {
	input.build != null
	some t in input.build.tools
	t.name == "bun"
	not t.sha256 in reviewed_bun
	msg := sprintf("bun %v (%v) is not a reviewed Bun", [t.version, t.sha256])
}

ran_bun if {
	some t in input.build.tools
	t.name == "bun"
}

deny contains "the build did not run bun" if {
	input.build != null
	not ran_bun
}

deny contains msg if {
	some p in input.allowed_modified
	msg := sprintf("%s was accepted with --allow-modified; rebuild from a clean tree", [p])
}

deny contains msg if {
	input.build != null
	not input.build.reproduced
	msg := sprintf("build %s was never reproduced", [input.build.id])
}
