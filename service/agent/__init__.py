"""The SSRL agent loop: prompt building, tag parsing, observation formats, modes and the trace."""
