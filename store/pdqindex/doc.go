// Package pdqindex is hashfed's in-memory PDQ match index: it holds up to tens of millions of 256-bit PDQ
// hashes, each under a caller-chosen uint32 id, and finds every hash within a Hamming radius of a query,
// exactly (the same results as comparing the query with every hash), at any radius from 0 to 256.
//
// It is derived state: the store rebuilds it from the logs on open ([Index.BulkLoad]) and keeps it current
// with [Index.Add], [Index.AddBatch] (the adds of a large write: replication, bootstrap, import) and
// [Index.Remove] on every add, revocation and expiry. It must not do I/O, hold anything but ids and hashes
// (listings, labels and policy live in the store), or rebuild itself in a way that hides a change: every
// Add, AddBatch and Remove is visible to the next search.
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
// A search reads in phases: the bucket records of every probe (which say where the buckets' ids are),
// then the ids in those buckets, then the first halves of the candidates' hashes, reading a hash's second
// half only when the first leaves it within the radius (for random hashes, about never at radius 31). Each
// phase computes the addresses of the cache lines the next will read, and the next prefetches them
// (PREFETCHT0, prefetch_amd64.s; nothing on other architectures) 48 lines ahead of the line it is reading,
// so that a few dozen misses are always in flight and the loops never wait on a branch whose outcome is
// still on its way from memory (the record phase does not branch on what a record says). The search is
// bound by memory latency: at 1M hashes a radius-31 query touches about 4,100 distinct cache lines (684
// records, 895 id lines, 2,539 hash halves), at 10M about 6,000 (1,682, 1,412 and 2,885), and the EPYC
// guest these figures come from serves independent random reads at about 14 ns a line against 200 ns or
// more for one read after another; without the prefetches the phases' loops kept too few misses in
// flight, at about 80 ns a line (docs/BENCHMARKS.md, "Round three"). An empty bucket (38% of the probes
// at 10M) reads no line of ids: its prefetch points at its record, already in the cache; and a record
// holds its group's place in the arena, so no line of block locations is read either (both were 1,700 of
// the 7,700 lines a query touched at 10M before "Round four"). An id found through several tables is reported only from the first
// table whose substring is within its radius, so no visited set is needed. Radii above 63, and searches
// the cost model prices above a scan, compare the query with every hash instead.
//
// [Index.SearchBatch] runs a few queries (groupQueries) through those phases together, and a batch that
// scans reads each hash once for all its queries. With the prefetches a single query already keeps the
// memory busy, so a batch of table searches costs about what its queries cost one by one; its results are
// exactly Search's.
//
// # Data layout
//
// Hashes live in pages of 4,096 indexed by id (allocated as ids are used), each hash split into halves of
// 16 bytes kept in separate pages, with a bitset of the ids present: ids should be dense. A table's 2^b buckets are grouped 60 to a 64-byte record
// (a uint32 position of the group's ids in the arena and 60 cumulative uint8 ends) and 240 to a block
// whose ids are contiguous in bucket order, so finding a bucket reads one cache line: about 1.07 bytes per
// bucket, where flat uint32 CSR offsets cost 4. The arena rewrites a block's four record positions when
// it moves the block. Blocks with a group of more than 255 ids (only clustered data makes them) keep exact
// uint32 offsets in a side map instead. The ids are 4 bytes in the table's arena (see arena.go): chunks of
// up to 1 MiB holding the blocks' regions back to back, with no per-block allocation. In all, about 32 +
// m*(4.4 + 1.1*2^b/n) bytes per hash: 92.8 measured at 1M hashes and 90.5 at 10M after a bulk load; adds
// make room in blocks and leave dead regions in the arenas, for up to about 10% more on the ids. Grown
// from empty by batches of 16,384 the index holds 93.3 bytes per hash at 1M and at 2M hashes; 1M
// bulk-loaded hashes with 24 such batches added, 96.5.
//
// The large arrays (hash pages, taken from slabs of up to 128 pages; the records of all of a layout's tables,
// one allocation; the id chunks of a bulk build, cut from one slab per table) are mapped outside the Go heap
// when they take 2 MiB or more (huge.go: anonymous mmap, aligned to 2 MiB, MADV_HUGEPAGE), so that Linux
// backs them with transparent huge pages where its setting is "madvise" or "always": a search's random reads
// over hundreds of megabytes would otherwise each miss the TLB too and wait for a page walk. Memory from the
// Go heap could not be relied on for that: the runtime reuses memory whose 4 KiB pages are already there (in
// `hashfed-bench match` at 1M hashes, 16 MB of the process's 139 were huge pages; mapped, 86). The structure
// that uses such an array holds the hugeMem that owns its mapping (the hash store, each table, each arena),
// and a cleanup unmaps it once that is unreachable; a freed chunk of a bulk slab gives its pages back
// (MADV_DONTNEED) and the slab goes with its last chunk. Under the race detector, which does not see memory
// outside the Go heap, the arrays stay on the heap.
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
// AddBatch stores the batch's hashes and leaves the new ids pending (pending.go): in no table yet, but found
// by every search that uses the tables, which also compares the query with each pending id's first half
// (16 bytes, read in id order). Once Len/8 ids are pending (4,096 to 32,768), or AddBatch has not been
// called for 100 ms, they are merged: table by table (one per CPU), it sorts them by key (a radix
// sort) and merges them into each block they land in with one pass from the back of the block: each id of
// the block moves once, by the number of inserts before it, and each record is updated eight bytes at a
// time; a block short of room moves once, merging on the way, with 1/16 spare. So a batch costs about a
// pass over the blocks it touches (at 1M hashes, 16,384 ids touch all 2,185 blocks of each table). The
// blocks lie scattered over the arena, so while it merges one block it prefetches the next one's records
// and first 44 lines of ids (a block at 1M holds about 460 ids, 29 lines): the merges no longer wait on
// memory at each block's start (about 20% less CPU growing an index to 1M by batches of 10,000). It is
// bound by memory bandwidth, about 12 ms for 16,384 ids into 1M hashes on this machine's two CPUs (1.4M adds
// per second, against 0.27M by Add), and proportionally more as the index grows: merging the store's
// batches of 10,000 ids three at a time, not one by one, is what makes the pending ids worth their scan
// (docs/BENCHMARKS.md, "Round five"). A merge marks, at each hold of the write lock, how far each table
// has got (key<<32 | id), so that a search during it reports a pending id from the scan only if the first
// table that would report it does not hold it yet: each id is reported once. For that mark to split the
// ids exactly, a merge sorts them by id first (the list of pending ids need not be in id order), so that
// each table inserts them in key<<32 | id order. A batch that takes the
// index past its layout's size range is not merged: AddBatch stores the hashes and builds the tables for
// the new size from them at once (every CPU; in the batch's time, not the background's, which cannot keep
// up with batches), cancelling a background re-layout it overtakes. Growing an empty index by batches of
// 16,384: 1.3M adds per second to 1M hashes, 1.0M to 2M (against 0.44M and 0.58M by Add, re-layouts
// included).
//
// When the size leaves the range its layout was chosen for (half an octave either way, so a change of at
// least a quarter octave, 19%, between two), the index is re-laid out in the background: one goroutine
// builds the new tables from the hashes (sorting by key, see below), reading them in batches of 16,384
// ids under the read lock, while searches keep using the old tables and every change keeps updating them
// and is also logged. The builder then replays the logged changes it did not see (removes one by one, adds
// merged as AddBatch merges them), the last few holding the writer mutex, and swaps the layouts under the
// write lock. A re-layout costs O(n) and needs a Θ(n) change in size, so O(1)
// amortized per change; while it runs the index holds both layouts' tables (up to twice the table memory)
// and 12 bytes per id of scratch. A re-layout the index outgrows before it finishes is abandoned and started
// again for the new size. BulkLoad builds the tables for its final size directly, on every CPU, under the
// write lock. A table is built in two passes that stay in cache, about 12 ns per id and table: the ids by
// block (a counter per block), then each block's few hundred by bucket, straight into its region.
//
// # Concurrency
//
// An Index is safe for concurrent use. Searches share a read lock and run in parallel. Writers (Add,
// AddBatch, Remove, BulkLoad and the swap at the end of a re-layout) take a writer mutex in turn, and the
// write lock for their changes: Add and Remove for microseconds (an arena compaction, up to about a
// millisecond), AddBatch in holds of about a millisecond at most (storing 32Ki hashes, or moving about
// 256Ki ids per table, one table per CPU; measured while growing to 1M by batches of 16,384 beside a
// searcher: median 0.4 ms, 99th percentile 1 ms, longest 2 to 5 ms), between which searches run: a search during AddBatch may
// miss a new id of that batch (stored after the search looked), but what it reports is stored and true, and
// reported once; the ids of earlier batches it finds in the tables or among the pending ids, merging or not. BulkLoad holds the write lock
// for its duration.
package pdqindex
