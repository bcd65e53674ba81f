# Admit only bytes a recorded build made, whose rebuild reproduced them, and whose
# build event is covered by a checkpoint signed with a key of this ledger that is
# neither revoked nor retired.
package cto.reproduced

import rego.v1

default allow := false

allow if count(deny) == 0

deny contains msg if {
	input.build == null
	msg := sprintf("%s: no recorded build made these bytes (record it with `cto-ledger build`)", [input.candidate.name])
}

deny contains msg if {
	input.build != null
	not input.build.reproduced
	msg := sprintf("build %s has no `build --check` that reproduced it", [input.build.id])
}

deny contains msg if {
	input.build != null
	not signed
	msg := sprintf("build %s is covered by no checkpoint signed with a live key (`cto-ledger checkpoint --sign`)", [input.build.id])
}

live_keys contains k.keyid if {
	some k in input.keys
	not k.revoked
	not k.retired
}

signed if {
	some s in input.build.signatures
	s.keyid in live_keys
}
