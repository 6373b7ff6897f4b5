package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/leadtail/leadtail/sources"
)

// Probe asks Meta whether the endpoint answers and the token and dataset
// are usable, without sending an event: it posts an empty data list, which
// Meta refuses with code 100 only after the token and the dataset passed.
// Each problem comes with its fix; none mentions the token.
func Probe(ctx context.Context, cfg Config, hc *http.Client) []sources.Problem {
	if hc == nil {
		hc = http.DefaultClient
	}
	req := Request{Data: []Event{}, AccessToken: cfg.AccessToken.Reveal()}
	if cfg.AppSecret != "" {
		req.AppSecretProof = AppSecretProof(cfg.AppSecret.Reveal(), cfg.AccessToken.Reveal())
	}
	body, err := json.Marshal(req)
	if err != nil {
		return []sources.Problem{{Check: "meta", Problem: err.Error(), Fix: "report a bug"}}
	}
	url := strings.TrimRight(cfg.Endpoint, "/") + "/" + cfg.APIVersion + "/" + cfg.DatasetID + "/events"
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return []sources.Problem{{Check: "meta.endpoint", Problem: err.Error(), Fix: "set meta.endpoint to https://graph.facebook.com"}}
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(hreq)
	if err != nil {
		return []sources.Problem{{Check: "meta.endpoint", Problem: fmt.Sprintf("%s is unreachable: %v", cfg.Endpoint, errWithoutURL(err)),
			Fix: "allow outbound HTTPS to graph.facebook.com (proxy, firewall, DNS) or fix meta.endpoint"}}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var eb ErrorBody
	if err := json.Unmarshal(raw, &eb); err != nil || eb.Error.Code == 0 {
		return []sources.Problem{{Check: "meta.endpoint", Problem: fmt.Sprintf("%s answered HTTP %d without a Graph API error", cfg.Endpoint, resp.StatusCode),
			Fix: "check meta.endpoint (and any proxy in between); Meta may also be unwell: try again later"}}
	}
	g := eb.Error
	where := fmt.Sprintf("Meta answered code %d", g.Code)
	if g.ErrorSubcode != 0 {
		where += fmt.Sprintf("/%d", g.ErrorSubcode)
	}
	if g.FbtraceID != "" {
		where += " (fbtrace_id " + g.FbtraceID + ")"
	}
	switch {
	case g.Code == 100 && g.ErrorSubcode == 33:
		return []sources.Problem{{Check: "meta.dataset_id", Problem: where + ": the dataset does not exist or is not shared with this token",
			Fix: "check meta.dataset_id in Events Manager and give the token's system user access to the dataset"}}
	case g.Code == 100 && g.Type == "GraphMethodException" && g.ErrorSubcode == 0:
		return []sources.Problem{{Check: "meta.app_secret", Problem: where + ": " + g.Message,
			Fix: "set meta.app_secret to the secret of the app that issued the token (or leave it empty if the app does not require appsecret_proof)"}}
	case g.Code == 100:
		return nil // empty data refused: token and dataset passed
	case g.Code == 190 || g.Code == 102:
		return []sources.Problem{{Check: "meta.access_token", Problem: where + ": the access token is invalid or expired",
			Fix: "create a new system-user access token in Business Settings and set META_ACCESS_TOKEN"}}
	case g.Code == 10 || (g.Code >= 200 && g.Code <= 299) || g.Code == 3:
		return []sources.Problem{{Check: "meta.access_token", Problem: where + ": the token lacks permission for this dataset",
			Fix: "grant the token's system user the ads_management permission and access to the dataset"}}
	case g.Code == 368:
		return []sources.Problem{{Check: "meta", Problem: where + ": the account is blocked for policy reasons",
			Fix: "resolve the block in Business Support Home before sending events"}}
	case g.Code == 2635:
		return []sources.Problem{{Check: "meta.api_version", Problem: where + ": the API version is no longer supported",
			Fix: "set meta.api_version to a current version (v26.0 at the time of writing)"}}
	case classifyTransientCode(g):
		return []sources.Problem{{Check: "meta", Warning: true, Problem: where + ": Meta is unwell or throttling right now",
			Fix: "nothing to change; leadtail retries such answers on its own"}}
	}
	return []sources.Problem{{Check: "meta", Problem: where + ": " + g.Message, Fix: "look the code up in Meta's Graph API error reference"}}
}

func classifyTransientCode(g GraphError) bool {
	switch {
	case g.IsTransient, g.Code == 1, g.Code == 2, g.Code == 21009:
		return true
	case g.Code == 4, g.Code == 17, g.Code == 32, g.Code == 613, g.Code == 341, g.Code >= 80000 && g.Code <= 80014:
		return true
	}
	return false
}

// errWithoutURL drops the URL from net/http errors (it is harmless here,
// since the token is in the body, but keeps messages short).
func errWithoutURL(err error) error {
	type unwrapper interface{ Unwrap() error }
	if u, ok := err.(unwrapper); ok && u.Unwrap() != nil {
		return u.Unwrap()
	}
	return err
}
