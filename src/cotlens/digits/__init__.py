"""Study 3 (Gambardella et al., ACL 2024): digit confidence in multiplication."""
