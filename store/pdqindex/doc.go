// Package pdqindex is hashfed's in-memory PDQ match index: it holds up to tens of millions of 256-bit PDQ
// hashes, each under a caller-chosen uint32 id, and finds every hash within a Hamming radius of a query,
// exactly (the same results as comparing the query with every hash), at any radius from 0 to 256.
//
// It is derived state: the store rebuilds it from the logs on open ([Index.BulkLoad]) and keeps it current
// with [Index.Add] and [Index.Remove] on every add, revocation and expiry. It must not do I/O, hold anything
// but ids and hashes (listings, labels and policy live in the store), or rebuild itself in a way that hides
// a change: every Add and Remove is visible to the next search.
//
// # Multi-index hashing
//
// A search of radius r uses m tables, each keyed by a disjoint substring of the hash: table t by b_t bits.
// Each table is searched at a radius r_t (or skipped, r_t = -1) with sum(r_t + 1) = r + 1: a hash within r
// of the query differs from it in at most r_t bits of some substring t, or it would differ in at least
// r + 1 bits in all, so reading every bucket within r_t of the query's substring in every table finds every
// match (Norouzi, Punjani and Fleet, "Fast Search in Hamming Space with Multi-Index Hashing", CVPR 2012;
// with equal substrings this is their refined pigeonhole, r = m*r' + a giving a+1 tables r' and the rest
// r'-1). Each found id is a candidate whose full distance is then computed. The radii come from a small
// dynamic program that minimises the expected cost, so substrings may have two lengths.
//
// The layout (how many substrings, how long) follows the index's size: m about 256/log2(n) substrings of
// about log2(n) bits, as Norouzi et al. advise, chosen by a cost model (two random reads per bucket, one
// per candidate; see layout.go) under a memory budget of 100 bytes per hash. At n = 1M that is 13
// substrings of 19 bits and at 10M 3 of 24 and 8 of 23, where HMA's faiss index uses 16 of 16 bits: at
// radius 31 and 10M hashes a query reads about 2,900 buckets and checks about 2,900 candidates, against
// faiss's 272 buckets and 41,000 candidates.
//
// A search reads in phases so that the cache misses within a phase are independent and overlap: the
// bucket records of every probe, then the ids in those buckets, then (a pass that only touches them) the
// first halves of the candidates' hashes, then the distances, reading a hash's second half only when the
// first leaves it within the radius (for random hashes, about never at radius 31). An id found through several tables is reported only from the
// first table whose substring is within its radius, so no visited set is needed. Radii above 63, and
// searches the cost model prices above a scan, compare the query with every hash instead.
//
// # Data layout
//
// Hashes live in pages of 4,096 indexed by id (allocated as ids are used), each hash split into halves of
// 16 bytes kept in separate pages, with a bitset of the ids present: ids should be dense. A table's 2^b buckets are grouped 62 to a 64-byte record
// (a uint16 start and 62 cumulative uint8 ends) and 248 to a block whose ids are contiguous in bucket
// order, so finding a bucket reads one cache line: about 1.03 bytes per bucket, where flat uint32 CSR
// offsets cost 4. Blocks with a group of more than 255 ids (only clustered data makes them) keep exact
// uint32 offsets in a side map instead. The ids are 4 bytes in the table's arena (see arena.go): chunks of
// up to 1 MiB holding the blocks' regions back to back, with no per-block allocation. In all, about 32 +
// m*(4.4 + 1.1*2^b/n) bytes per hash: 92.6 measured at 1M hashes and 90.0 at 10M after a bulk load; adds
// make room in blocks and leave dead regions in the arenas, for up to about 10% more on the ids.
//
// # Updates
//
// Add and Remove change every table in place under the write lock: an insert shifts its block's ids after
// the bucket (a few hundred) and bumps the record's counts; a block that is full moves to the end of the
// arena with 1/16 more room, and an arena whose dead entries pass 1/16 empties its most dead chunk (at
// most 1 MiB of copying). An add costs about 3 µs at 1M hashes and a re-add (remove and insert) about 5.
// Should that spare room and dead space push an index of 64Ki hashes or more past 100 bytes per hash, it
// is laid out afresh (packed) in the background, as below, at most once per n/8 changes.
//
// When the size leaves the range its layout was chosen for (half an octave either way, so a change of at
// least a quarter octave, 19%, between two), the index is re-laid out in the background: one goroutine
// builds the new tables from the hashes with a counting sort per table, reading them in batches of 16,384
// ids under the read lock, while searches keep using the old tables and every change keeps updating them
// and is also logged. The builder then replays the logged changes it did not see, the last few under the
// write lock, and swaps the layouts. A re-layout costs O(n) and needs a Θ(n) change in size, so O(1)
// amortized per change; while it runs the index holds both layouts' tables (up to twice the table memory)
// and 4 bytes per id of scratch. A re-layout the index outgrows before it finishes is abandoned and started
// again for the new size. BulkLoad builds the tables for its final size directly, on every CPU, under the
// write lock.
//
// # Concurrency
//
// An Index is safe for concurrent use. Searches share a read lock and run in parallel; Add, Remove and the
// swap at the end of a re-layout take the write lock for microseconds (an arena compaction, up to about a
// millisecond). BulkLoad holds the write lock for its duration.
package pdqindex
