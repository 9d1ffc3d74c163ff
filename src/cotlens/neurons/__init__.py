"""Study 2 (Rai & Yao, ACL 2024): FFN neurons as a lens on arithmetic CoT."""
