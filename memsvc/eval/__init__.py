"""`memsvc eval`: the EverMemBench-S decoupled protocol (evidence access apart from answer quality), run through
the real REST API against benchmark data or a synthetic ladder."""
