package demo

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashfed/hashfed/consortium"
	"github.com/hashfed/hashfed/internal/localnet"
	pb "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// The roles of the demo: the four members admit an NGO (civil society) and a referral unit
// (authority); the NGO certifies a parody account that a member had listed, and a match of it
// comes back as protected; the unit refers content to alpha and bravo, who answer.

// parodyAccount is the account the NGO certifies as parody.
const parodyAccount = "https://social.example/@caliphate_cats"

// roleWait bounds each wait of these steps for what a node learns from its peers, and
// newNodeTimeout a call to a node that just started (which takes submissions only once it heard
// its peers about its own log, up to 10 s): generous, so that a loaded machine does not fail them.
const (
	roleWait       = 30 * time.Second
	newNodeTimeout = 30 * time.Second
)

// caughtUp waits until a node that just started holds the state alpha holds.
func (d *demo) caughtUp(id string) error {
	ok := localnet.WaitUntil(roleWait, func() bool {
		want, err := d.status("alpha")
		if err != nil {
			return false
		}
		st, err := d.status(id)
		return err == nil && st.StateDigest == want.StateDigest
	})
	if !ok {
		return fmt.Errorf("%s's node did not reach alpha's state within %v", id, roleWait)
	}
	return nil
}

// submitWithin is submit with its own timeout.
func (d *demo) submitWithin(id string, es []*pb.Entry, timeout time.Duration) ([]*pb.SubmitResult, error) {
	c, err := d.dial(id)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	results, err := c.Submit(d.ctx, es, timeout)
	if err != nil {
		return nil, err
	}
	for _, r := range results {
		if r.Error != "" {
			return nil, errors.New(r.Error)
		}
	}
	return results, nil
}

func (d *demo) runRoles() error {
	members := []string{"alpha", "bravo", "charlie", "delta"}
	if err := d.step("the members admit an NGO and a referral unit by quorum vote", func() (string, error) {
		p := must(consortium.NewPropose(0, "alpha", 1, "admit the NGO and the referral unit",
			consortium.AdmitChange(d.keys["iru"].Public(), pb.Role_ROLE_AUTHORITY),
			consortium.AdmitChange(d.keys["ngo"].Public(), pb.Role_ROLE_CIVIL_SOCIETY)))
		res, err := d.submit("alpha", []*pb.Entry{p})
		if err != nil {
			return "", err
		}
		h := consortium.LeafHash(res[0].Entry)
		for _, id := range []string{"bravo", "charlie"} {
			ok := localnet.WaitUntil(roleWait, func() bool {
				st, err := d.status(id)
				return err == nil && len(st.Proposals) == 1
			})
			if !ok {
				return "", fmt.Errorf("%s did not see the proposal within %v", id, roleWait)
			}
			if _, err := d.submit(id, []*pb.Entry{must(consortium.NewEndorse(0, 1, h))}); err != nil {
				return "", err
			}
		}
		ok := localnet.WaitUntil(roleWait, func() bool {
			for _, id := range members {
				st, err := d.status(id)
				if err != nil || st.RosterEpoch != 2 {
					return false
				}
			}
			return true
		})
		if !ok {
			return "", fmt.Errorf("the roster did not reach epoch 2 everywhere within %v", roleWait)
		}
		for _, id := range []string{"ngo", "iru"} {
			if err := d.startNode(id); err != nil {
				return "", err
			}
		}
		return fmt.Sprintf("proposal %x…: 3 of 4 votes (effective quorum 3); ngo (civil-society) and iru (authority) start their nodes", h[:6]), nil
	}); err != nil {
		return err
	}
	acct, err := consortium.ParseSignal("url", parodyAccount)
	if err != nil {
		return err
	}
	if err := d.step("the NGO certifies a parody account; a match of it is protected", func() (string, error) {
		// delta's classifier took the parody for the real thing and listed it.
		if _, err := d.submit("delta", []*pb.Entry{must(consortium.NewAdd(0, acct, []string{"behaviour:glorification-of-terrorist-acts"}, consortium.AddOptions{}))}); err != nil {
			return "", err
		}
		if err := d.caughtUp("ngo"); err != nil {
			return "", err
		}
		c := must(consortium.NewCertify(0, "ngo", []consortium.Signal{acct}, pb.Category_CATEGORY_PARODY,
			"satirical account mocking the group's propaganda; followed by our monitors since 2024", consortium.CertifyOptions{Subject: "@caliphate_cats"}))
		if _, err := d.submitWithin("ngo", []*pb.Entry{c}, newNodeTimeout); err != nil {
			return "", err
		}
		var ms []*pb.MatchResult
		ok := localnet.WaitUntil(roleWait, func() bool {
			ms, err = d.match("bravo", acct, -1)
			return err == nil && len(ms) == 1 && len(ms[0].Protected) == 1
		})
		if !ok {
			return "", fmt.Errorf("bravo's match of the account is not protected within %v (%v)", roleWait, err)
		}
		p := ms[0].Protected[0]
		return fmt.Sprintf("bravo matches %s: listed by %s, PROTECTED: %s certified by %s: %q\n→ bravo's pipeline sends it to review, not to automated removal",
			p.Subject, ms[0].Listings[0].Member, consortium.CategoryName(p.Category), p.Author, p.Reason), nil
	}); err != nil {
		return err
	}
	referred, err := consortium.ParseSignal("md5", "3b9d1bb2ac8d2c1b4e3e6f0c3c0a3f11")
	if err != nil {
		return err
	}
	return d.step("the referral unit refers content to alpha and bravo; both answer", func() (string, error) {
		if err := d.caughtUp("iru"); err != nil {
			return "", err
		}
		r := must(consortium.NewRefer(0, "iru", []consortium.Signal{referred}, "Regulation (EU) 2021/784 (TCO), article 3",
			time.Now().Add(time.Hour).UnixMilli(), consortium.ReferOptions{OrderRef: "IRU-2026-0117", To: []string{"alpha", "bravo"}}))
		res, err := d.submitWithin("iru", []*pb.Entry{r}, newNodeTimeout)
		if err != nil {
			return "", err
		}
		h := consortium.LeafHash(res[0].Entry)
		answers := map[string]*pb.Entry{
			"alpha": must(consortium.NewAnswer(0, h, pb.Outcome_OUTCOME_LISTED, "")),
			"bravo": must(consortium.NewAnswer(0, h, pb.Outcome_OUTCOME_DECLINED, "news report about the attack, kept under our newsworthiness policy")),
		}
		for _, id := range []string{"alpha", "bravo"} {
			ok := localnet.WaitUntil(roleWait, func() bool { return len(d.referrals(id, false)) == 1 })
			if !ok {
				return "", fmt.Errorf("%s's node does not show the open referral within %v", id, roleWait)
			}
			es := []*pb.Entry{answers[id]}
			if id == "alpha" {
				es = append([]*pb.Entry{must(consortium.NewAdd(0, referred, []string{"behaviour:recruitment-instruction"}, consortium.AddOptions{Note: "referred by iru"}))}, es...)
			}
			if _, err := d.submit(id, es); err != nil {
				return "", err
			}
		}
		var rs []*pb.ReferralView
		ok := localnet.WaitUntil(roleWait, func() bool {
			rs = d.referrals("iru", true)
			return len(rs) == 1 && len(rs[0].Answers) == 2
		})
		if !ok {
			return "", fmt.Errorf("the referral unit does not see both answers within %v", roleWait)
		}
		out := []string{fmt.Sprintf("referral %x… (order IRU-2026-0117, due in 1h) to alpha and bravo", h[:6])}
		for _, a := range rs[0].Answers {
			reason := ""
			if a.Reason != "" {
				reason = ": " + a.Reason
			}
			out = append(out, fmt.Sprintf("%s answered %s after %v (from the two entries' log times)%s", a.Member, consortium.OutcomeName(a.Outcome), time.Duration(a.DelayMs)*time.Millisecond, reason))
		}
		return strings.Join(out, "\n"), nil
	})
}

// referrals returns the referrals a demo node shows (all, or those open for its member).
func (d *demo) referrals(id string, all bool) []*pb.ReferralView {
	c, err := d.dial(id)
	if err != nil {
		return nil
	}
	defer c.Close()
	ctx, cancel := c.Ctx(d.ctx, callTimeout)
	defer cancel()
	resp, err := c.MemberServiceClient.Referrals(ctx, &pb.ReferralsRequest{All: all})
	if err != nil {
		return nil
	}
	return resp.Referrals
}
