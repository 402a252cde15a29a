"""finetune_qa."""
