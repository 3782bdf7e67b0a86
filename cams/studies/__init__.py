"""The papers' evaluations: L-CAM Table 1 (`lcam_table1`) and Feature CAM Tables 2/3 (`feature_cam_tables`)."""
