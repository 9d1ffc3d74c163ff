"""Study 4 (MoTE, 2025): expert maps and expert switching in an MoE."""
