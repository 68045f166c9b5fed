package node

// healState is what the node knows of its own gossip health.
type healState struct {
	isolated bool
}
