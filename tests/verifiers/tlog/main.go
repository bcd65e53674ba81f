// tlogcheck: reads a C2SP tlog-tiles log from a folder with Go's own transparency-log
// code (golang.org/x/mod/sumdb/note and sumdb/tlog, from Debian's
// golang-golang-x-mod-dev), not cto-ledger's:
//
//	tlogcheck DIR VKEY INDEX...
//
// It opens DIR/checkpoint with the verifier key VKEY (a C2SP note key), reads the hash
// tiles through tlog.TileHashReader (which checks every tile it reads against the signed
// root), recomputes the root, and for each INDEX takes the entry from its entry bundle,
// proves its inclusion from the tiles alone and checks the proof. Prints one line per
// check; exits 1 on the first failure. The only adapter is the path layout: sumdb writes
// the tile height into the path (tile/8/L/N), C2SP tlog-tiles does not (tile/L/N).
package main

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type dirTiles struct{ dir string }

func (d dirTiles) Height() int { return 8 }

func (d dirTiles) path(t tlog.Tile) string {
	// tile/8/L/N[.p/W] in sumdb's layout; C2SP drops the height.
	return filepath.Join(d.dir, "tile", strings.TrimPrefix(t.Path(), "tile/8/"))
}

func (d dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		b, err := os.ReadFile(d.path(t))
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (d dirTiles) SaveTiles([]tlog.Tile, [][]byte) {}

func fail(format string, a ...interface{}) {
	fmt.Printf("FAIL "+format+"\n", a...)
	os.Exit(1)
}

// entry reads entry i of the tree of size n from its entry bundle.
func entry(dir string, n, i int64) []byte {
	t := tlog.Tile{H: 8, L: -1, N: i / 256, W: 256}
	if left := n - t.N*256; left < 256 {
		t.W = int(left)
	}
	p := filepath.Join(dir, "tile", "entries", strings.TrimPrefix(t.Path(), "tile/8/data/"))
	b, err := os.ReadFile(p)
	if err != nil {
		fail("entry bundle %s: %v", p, err)
	}
	for k := int64(0); len(b) >= 2; k++ {
		size := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+size {
			fail("entry bundle %s is truncated", p)
		}
		if k == i%256 {
			return b[2 : 2+size]
		}
		b = b[2+size:]
	}
	fail("entry bundle %s has no entry %d", p, i%256)
	return nil
}

func main() {
	if len(os.Args) < 3 {
		fail("usage: tlogcheck DIR VKEY INDEX...")
	}
	dir, vkey := os.Args[1], os.Args[2]
	v, err := note.NewVerifier(vkey)
	if err != nil {
		fail("verifier key: %v", err)
	}
	msg, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		fail("checkpoint: %v", err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		fail("note.Open: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 3 {
		fail("checkpoint body has %d lines", len(lines))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("checkpoint size %q: %v", lines[1], err)
	}
	rootBytes, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(rootBytes) != 32 {
		fail("checkpoint root %q", lines[2])
	}
	var root tlog.Hash
	copy(root[:], rootBytes)
	fmt.Printf("ok note signed by %s: %s size %d\n", v.Name(), lines[0], size)
	tree := tlog.Tree{N: size, Hash: root}
	hr := tlog.TileHashReader(tree, dirTiles{dir})
	th, err := tlog.TreeHash(size, hr)
	if err != nil {
		fail("tree hash from the tiles: %v", err)
	}
	if th != root {
		fail("tree hash from the tiles %v is not the checkpoint's %v", th, root)
	}
	fmt.Printf("ok tree hash from the tiles is the checkpoint's root\n")
	for _, a := range os.Args[3:] {
		i, err := strconv.ParseInt(a, 10, 64)
		if err != nil || i < 0 || i >= size {
			fail("index %q is not in the tree of size %d", a, size)
		}
		leaf := tlog.RecordHash(entry(dir, size, i))
		proof, err := tlog.ProveRecord(size, i, hr)
		if err != nil {
			fail("prove record %d from the tiles: %v", i, err)
		}
		if err := tlog.CheckRecord(proof, size, root, i, leaf); err != nil {
			fail("record %d: %v", i, err)
		}
		fmt.Printf("ok record %d included (%d hashes)\n", i, len(proof))
	}
}
