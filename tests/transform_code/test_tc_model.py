"""The network's contract: persistence at start, the non-working-day fallback, the holiday calendar."""

from datetime import date

import torch

from velibcast.transform_code import velib_features as F
from velibcast.transform_code.velib_lstm import DEFAULT_CONFIG, VelibLSTM, to_counts

SCALER = {k: {"mean": 0.0, "std": 1.0} for k in ("capacity", "lat", "lon")}


def rows(n, weekend):
    torch.manual_seed(0)
    x = torch.zeros(n, len(F.FEATURE_COLUMNS))
    x[:, F.COL["capacity"]] = 30
    x[:, : F.HISTORY_LEN] = torch.randint(0, 31, (n, F.HISTORY_LEN)).float()
    x[:, F.COL["hour"]] = 8
    x[:, F.COL[F.NON_WORKING]] = weekend
    x[:, F.COL["station_index"]] = 1
    return x


def persistence(x):
    return to_counts(x[:, F.HISTORY_LEN - 1 : F.HISTORY_LEN].repeat(1, 3), x[:, F.COL["capacity"]])


def test_untrained_head_is_persistence():
    net = VelibLSTM(dict(DEFAULT_CONFIG, n_stations=3), SCALER)
    x = rows(8, 0)
    assert torch.equal(to_counts(net(x), x[:, F.COL["capacity"]]), persistence(x))


def test_non_working_days_fall_back_to_persistence_when_never_trained_on():
    net = VelibLSTM(dict(DEFAULT_CONFIG, n_stations=3, persistence_on_non_working_days=True), SCALER)
    torch.nn.init.normal_(net.out.weight, std=1.0)
    torch.nn.init.normal_(net.out.bias, std=1.0)
    weekday, weekend = rows(8, 0), rows(8, 1)
    assert torch.equal(to_counts(net(weekend), weekend[:, F.COL["capacity"]]), persistence(weekend))
    assert not torch.equal(to_counts(net(weekday), weekday[:, F.COL["capacity"]]), persistence(weekday))


def test_french_public_holidays():
    h = F.french_public_holidays(2022)
    assert len(h) == 11
    assert {date(2022, 4, 18), date(2022, 5, 26), date(2022, 6, 6)} <= h  # Easter Monday, Ascension, Whit Monday
    assert date(2024, 5, 9) in F.french_public_holidays(2024)
    assert F.is_non_working_day(date(2022, 5, 26)) and F.is_non_working_day(date(2022, 5, 28))
    assert not F.is_non_working_day(date(2022, 5, 25))
