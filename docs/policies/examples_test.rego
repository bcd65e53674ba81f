# `cto-ledger policy test docs/policies` runs these.
package cto.examples_test

import rego.v1

import data.cto.reproduced
import data.cto.team

key := {"keyid": "k1", "algorithm": "ed25519", "revoked": false, "retired": false}

bun := {"name": "bun", "path": "/usr/bin/bun", "version": "1.3.14", "sha256": "sha256:0000000000000000000000000000000000000000000000000000000000000000"}

build := {
	"id": "bld_1", "tools": [bun], "reproduced": true,
	"signatures": [{"keyid": "k1", "checkpoint_size": 9}],
	"modified": [{"path": "src/generated/package-assets.ts"}],
}

good := {
	"kind": "admission",
	"candidate": {"name": "ca"},
	"source": {"url": "https://github.com/workos/case", "changes": []},
	"allowed_modified": [],
	"build": build,
	"keys": [key],
}

test_team_admits_a_reproduced_bun_build_of_case if team.allow with input as good

test_team_accepts_the_builds_own_edit if {
	# A tracked file the build rewrote is the build's `modified`, not `allowed_modified`.
	team.allow with input as good
	count(good.build.modified) == 1
}

test_team_refuses_another_repository if {
	not team.allow with input as object.union(good, {"source": {"url": "https://github.com/evil/case"}})
	some m in team.deny with input as object.union(good, {"source": {"url": "https://github.com/evil/case"}})
	contains(m, "not github.com/workos/case")
}

test_team_refuses_an_unreviewed_bun if {
	other := object.union(bun, {"sha256": "sha256:1111111111111111111111111111111111111111111111111111111111111111"})
	not team.allow with input as object.union(good, {"build": object.union(build, {"tools": [other]})})
}

test_team_refuses_a_diverging_rebuild if {
	not team.allow with input as object.union(good, {"build": object.union(build, {"reproduced": false})})
}

test_team_refuses_allow_modified if {
	not team.allow with input as object.union(good, {"allowed_modified": ["gen.ts"]})
}

test_reproduced_admits_a_signed_reproduced_build if reproduced.allow with input as good

test_reproduced_refuses_an_unsigned_build if {
	not reproduced.allow with input as object.union(good, {"build": object.union(build, {"signatures": []})})
}

test_reproduced_refuses_a_revoked_key if {
	not reproduced.allow with input as object.union(good, {"keys": [object.union(key, {"revoked": true})]})
}

test_reproduced_refuses_no_build if {
	not reproduced.allow with input as object.union(good, {"build": null})
}
