package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
)

// runAuditVendors prints, per channel and upstream model, the prompt tokens
// vendors billed against baimo's own exact count of the same requests (a
// sample; see usage.audit_every), through a running gateway's admin API.
func runAuditVendors(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, fs := adminFlags("audit vendors", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	from := fs.String("from", "", "start of the period, RFC 3339 (default: all)")
	to := fs.String("to", "", "end of the period, RFC 3339 (default: now)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	q := url.Values{}
	if *from != "" {
		q.Set("from", *from)
	}
	if *to != "" {
		q.Set("to", *to)
	}
	var out struct {
		Data []struct {
			Channel       string `json:"channel"`
			UpstreamModel string `json:"upstream_model"`
			Requests      int64  `json:"requests"`
			VendorInput   int64  `json:"vendor_input_tokens"`
			CountedInput  int64  `json:"counted_input_tokens"`
			DriftPercent  string `json:"drift_percent"`
		} `json:"data"`
	}
	if err := c.do(ctx, http.MethodGet, "/admin/audit/vendors?"+q.Encode(), nil, &out); err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(out.Data)
	}
	if len(out.Data) == 0 {
		fmt.Fprintln(stdout, "No audited requests yet (vendor-metered chat requests of models with an exact tokenizer).")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANNEL\tUPSTREAM MODEL\tREQUESTS\tVENDOR PROMPT TOKENS\tCOUNTED\tDRIFT %")
	for _, d := range out.Data {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", d.Channel, d.UpstreamModel, d.Requests, d.VendorInput, d.CountedInput, d.DriftPercent)
	}
	return tw.Flush()
}
