// Package consortium holds the rules and formats of a hashfed consortium: the genesis, member keys,
// the signed entries of each member's append-only log (adds, revokes, opinions, roster proposals and
// endorsements), log trees and checkpoints with their cosignatures, heads notes, equivocation
// evidence, the audit bundle, and the shared [State] that replaying every log produces, with its
// digest.
//
// Every node and every auditor must reach the same [State] and [State.Digest] from the same logs,
// so this package is pure: it reads no disk, opens no network connection and never reads the
// clock. Time comes only from the entries themselves or from an argument; randomness (for
// [GenerateKey]) only from an [io.Reader] the caller passes; stored entries from an [EntryReader];
// an audit bundle from an [io/fs.FS]. Storage lives in package store, networking in package node.
// docs/PROTOCOL.md specifies every byte this package reads and writes.
package consortium
