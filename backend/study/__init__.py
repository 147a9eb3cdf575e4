"""Study design and analysis: participant configuration, trial schedules, and detection statistics.

Pure Python/numpy/scipy: nothing here touches the database, the web layer or torch.
"""
