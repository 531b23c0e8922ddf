"""The unified 人地事物组织 model, its derivations, mappings and code tables."""
