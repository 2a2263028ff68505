package console

// CSVSafe is csvSafe, for the external tests.
var CSVSafe = csvSafe
