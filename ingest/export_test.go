package ingest

// DLQReplayNamespace lets the tests derive the id a replay gives a letter
// without one, to check that it is stable.
var DLQReplayNamespace = dlqReplayNamespace()

// ReplayRecord makes the log-topic record of a letter (replayRecord).
var ReplayRecord = replayRecord
