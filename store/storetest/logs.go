package storetest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/logengine/logengine/store/block"
	"github.com/logengine/logengine/store/logs"
)

// StoredLogs decodes every block of the database at dbURL: what is stored,
// read behind the store's back.
func StoredLogs(t testing.TB, dbURL string) []logs.Event {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT data FROM all_blocks")
	if err != nil {
		t.Fatalf("read blocks: %v", err)
	}
	datas, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatalf("read blocks: %v", err)
	}
	codec, err := block.NewCodec(block.CompressionFastest)
	if err != nil {
		t.Fatal(err)
	}
	defer codec.Close()
	var out []logs.Event
	for _, d := range datas {
		events, err := codec.Decode(d)
		if err != nil {
			t.Fatalf("decode block: %v", err)
		}
		out = append(out, events...)
	}
	return out
}

// StoredCount is how many logs the database at dbURL holds.
func StoredCount(t testing.TB, dbURL string) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, "SELECT coalesce(sum(row_count), 0)::bigint FROM all_blocks").Scan(&n); err != nil {
		t.Fatalf("count stored logs: %v", err)
	}
	return n
}
