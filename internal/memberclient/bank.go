package memberclient

// The client of a node's local banks (docs/API.md, "Local banks"): they are served by the node's
// HTTP JSON API only, so this client speaks HTTP, with the member API's bearer token.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrNoBank means the node has no local bank of that name (its answer 404).
var ErrNoBank = errors.New("no such local bank")

// maxBankAnswer bounds an answer of the node other than a bank's list.
const maxBankAnswer = 1 << 20

// BankClient talks to the local banks of one node's HTTP API.
type BankClient struct {
	base  *url.URL
	token string
	http  *http.Client
}

// Bank is one local bank as the node lists it.
type Bank struct {
	Name string `json:"name"`
	Size int    `json:"size"`
}

// BankResult is the node's answer to a list applied to a bank.
type BankResult struct {
	Added   int           `json:"added"`
	Updated int           `json:"updated"`
	Deleted int           `json:"deleted"`
	Size    int           `json:"size"`
	Skipped int           `json:"skipped"`
	Refused []BankRefusal `json:"refused"`
}

// BankRefusal is a line of a list the node did not apply, and why.
type BankRefusal struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// BankMode says what a list posted to a bank does: add its signals (replacing the bank's entries
// of the same signals), make the bank exactly the list, or delete its signals.
type BankMode int

// The modes of [BankClient.Apply].
const (
	BankAdd BankMode = iota
	BankReplace
	BankDelete
)

// NewBankClient returns a client of the HTTP API at addr (host:port, or an http:// or https://
// URL with no path), sending token as a bearer token when it is not empty, each call bounded by
// timeout.
func NewBankClient(addr, token string, timeout time.Duration) (*BankClient, error) {
	raw := addr
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
		return nil, fmt.Errorf("HTTP API address %q: want host:port or http://host:port", addr)
	}
	u.Path = ""
	return &BankClient{base: u, token: token, http: &http.Client{Timeout: timeout}}, nil
}

// Addr is the address the client talks to, for messages.
func (c *BankClient) Addr() string { return c.base.Host }

// List returns the node's local banks, by name.
func (c *BankClient) List(ctx context.Context) ([]Bank, error) {
	var out struct {
		Banks []Bank `json:"banks"`
	}
	err := c.call(ctx, http.MethodGet, "/v1/banks", nil, nil, func(r io.Reader) error {
		return json.NewDecoder(io.LimitReader(r, maxBankAnswer)).Decode(&out)
	})
	return out.Banks, err
}

// Bank names go into the path as they are: the caller checks them (store.CheckBankName), so that
// no name can name another path.

// Get writes the bank named name to w as a hash list of format (te, csv, pytx-csv or jsonl).
func (c *BankClient) Get(ctx context.Context, name, format string, w io.Writer) error {
	q := url.Values{"format": {format}}
	return c.call(ctx, http.MethodGet, "/v1/banks/"+name, q, nil, func(r io.Reader) error {
		_, err := io.Copy(w, r)
		return err
	})
}

// Apply posts the list in body, of format (te, csv, pytx-csv, jsonl, ncmec or stopncii), to the
// bank named name, in mode. The node applies it in one transaction, except the lines it refuses.
func (c *BankClient) Apply(ctx context.Context, name, format string, body io.Reader, mode BankMode) (BankResult, error) {
	q := url.Values{"format": {format}}
	switch mode {
	case BankReplace:
		q.Set("replace", "true")
	case BankDelete:
		q.Set("delete", "true")
	}
	var res BankResult
	err := c.call(ctx, http.MethodPost, "/v1/banks/"+name, q, body, func(r io.Reader) error {
		return json.NewDecoder(io.LimitReader(r, maxBankAnswer)).Decode(&res)
	})
	return res, err
}

// Drop deletes the bank named name and everything in it.
func (c *BankClient) Drop(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodDelete, "/v1/banks/"+name, nil, nil, func(io.Reader) error { return nil })
}

// call makes one request and hands a 200 answer's body to read; any other answer becomes an error
// with the node's message.
func (c *BankClient) call(ctx context.Context, method, path string, q url.Values, body io.Reader, read func(io.Reader) error) error {
	u := *c.base
	u.Path = path // escaped by u.String
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ne net.Error
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return fmt.Errorf("the node's HTTP API at %s is not running (connection refused): check [http] listen in the node's config, or --http", c.base.Host)
		case errors.As(err, &ne) && ne.Timeout():
			return fmt.Errorf("the node's HTTP API at %s did not answer in time", c.base.Host)
		}
		return fmt.Errorf("the node's HTTP API at %s: %w", c.base.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := read(resp.Body); err != nil {
			return fmt.Errorf("the node's HTTP API at %s: reading the answer: %w", c.base.Host, err)
		}
		return nil
	}
	var msg struct {
		Error string `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBankAnswer))
	fromNode := json.Unmarshal(b, &msg) == nil && msg.Error != "" // a hashfed node answers errors in JSON
	if !fromNode {
		msg.Error = strings.TrimSpace(string(b))
		if len(msg.Error) > 200 {
			msg.Error = msg.Error[:200] + "…"
		}
	}
	switch {
	case resp.StatusCode == http.StatusNotFound && fromNode:
		return &nodeError{msg: msg.Error, cause: ErrNoBank}
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s answers %s with 404 (%s): is it a hashfed node's HTTP API?", c.base.Host, path, msg.Error)
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("the node's HTTP API at %s refused the call: %s (set --token or $HASHFED_TOKEN)", c.base.Host, msg.Error)
	}
	return fmt.Errorf("the node's HTTP API at %s: %s (HTTP %d)", c.base.Host, msg.Error, resp.StatusCode)
}

// nodeError is an error the node answered: its message as the node wrote it, classed by its cause.
type nodeError struct {
	msg   string
	cause error
}

func (e *nodeError) Error() string { return e.msg }
func (e *nodeError) Unwrap() error { return e.cause }
