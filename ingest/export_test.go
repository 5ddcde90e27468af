package ingest

// DLQReplayNamespace lets the tests derive the id a replay gives a letter
// without one, to check that it is stable.
var DLQReplayNamespace = dlqReplayNamespace()

// ReplayRecord makes the log-topic record of a letter (replayRecord).
var ReplayRecord = replayRecord

// Buffered is how many records the producer holds that Kafka has not
// acknowledged or refused yet.
func (p *Producer) Buffered() int64 { return p.cl.BufferedProduceRecords() }
