"""Study 1 (Dutta et al., TMLR 2024): step-by-step reasoning on fictional ontologies."""
