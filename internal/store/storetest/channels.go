package storetest

import (
	"context"
	"errors"
	"testing"

	"baimo/internal/channels"
)

func testChannels(t *testing.T, s Store) {
	ctx := context.Background()
	v0, err := s.ChannelsVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := channels.Stored{Name: "a", Spec: []byte(`{"name":"a","api_keys":["sk-1"]}`), UpdatedNs: 10}
	if err := s.PutChannel(ctx, a); err != nil {
		t.Fatal(err)
	}
	v1, _ := s.ChannelsVersion(ctx)
	a.Spec, a.UpdatedNs = []byte(`{"name":"a","api_keys":["sk-2"]}`), 20
	if err := s.PutChannel(ctx, a); err != nil {
		t.Fatal(err)
	}
	v2, _ := s.ChannelsVersion(ctx)
	if err := s.PutChannel(ctx, channels.Stored{Name: "b", Spec: []byte(`{}`), UpdatedNs: 15}); err != nil {
		t.Fatal(err)
	}
	v3, _ := s.ChannelsVersion(ctx)
	list, err := s.Channels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "a" || string(list[0].Spec) != `{"name":"a","api_keys":["sk-2"]}` ||
		list[0].UpdatedNs != 20 || list[1].Name != "b" {
		t.Errorf("Channels = %+v", list)
	}
	if err := s.DeleteChannel(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteChannel(ctx, "a"); !errors.Is(err, channels.ErrNotFound) {
		t.Errorf("DeleteChannel twice = %v, want ErrNotFound", err)
	}
	v4, _ := s.ChannelsVersion(ctx)
	seen := map[string]bool{}
	for _, v := range []string{v0, v1, v2, v3, v4} {
		if seen[v] {
			t.Errorf("versions %v: a change left the version as it was", []string{v0, v1, v2, v3, v4})
		}
		seen[v] = true
	}
}
