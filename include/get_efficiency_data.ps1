<#
.SYNOPSIS
    Collects the storage-efficiency figures of finished Veeam Backup & Replication job
    sessions in a time window and writes them to stdout as one JSON document.

.DESCRIPTION
    Runs on the VBR server itself. Reads the sessions whose CreationTime lies in
    [From, To) (UTC), skips sessions that are still running, and emits the collector
    contract of the veeam_efficiency DAG package (schema_version 1, see
    plugins/veeam_efficiency/contract.py): one JSON object, UTF-8 without BOM, on stdout.
    Everything else (progress, the data path that ran, errors) goes to stderr. Any failure
    exits with code 1 and a message on stderr; stdout then holds nothing.

    Veeam's figures are passed through unchanged: NAS jobs report BackupStats of 0 and are
    emitted as such (the downstream validator counts zero-data sessions out); no ratio is
    ever computed or invented here.

.PARAMETER From
    Start of the window, inclusive. ISO 8601 UTC, e.g. 2026-10-28T00:00:00Z.

.PARAMETER To
    End of the window, exclusive. ISO 8601 UTC, e.g. 2026-10-29T00:00:00Z. Must be after From.

.PARAMETER JobName
    Optional job names to keep (exact, case-insensitive). For people running the script by hand.

.PARAMETER JobNameBase64
    Optional base64 of a UTF-8 JSON array of job names, e.g. the base64 of ["Daily SQL"].
    This is what the DAG passes, so no shell ever sees a job name. Combined with -JobName
    as a union; when neither yields a name, all backup jobs are collected.

.EXAMPLE
    powershell.exe -NoProfile -NonInteractive -File .\get_efficiency_data.ps1 -From 2026-10-28T00:00:00Z -To 2026-10-29T00:00:00Z

.EXAMPLE
    pwsh -NoProfile -NonInteractive -File .\get_efficiency_data.ps1 -From 2026-10-28T00:00:00Z -To 2026-10-29T00:00:00Z -JobName 'Daily SQL', 'File servers'

.NOTES
    Runs on Windows PowerShell 5.1 (VBR 12) and PowerShell 7 (VBR 13). Read-only.

    Permissions: the account needs a VBR user role of at least "Veeam Backup Viewer"
    (read-only) on this backup server, and must be a member of a local group that is allowed
    to load the Veeam.Backup.PowerShell module on the server (VBR 11 or later). The execution
    policy must allow running this local, unsigned script (RemoteSigned, the Windows Server
    default, does).

    Data paths, tried in this order (the one that ran is written to stderr):
      1. type-interval: [Veeam.Backup.Core.CBackupSession]::GetByTypeAndTimeInterval(type, from, to)
         once per backup job type. Indexed query on the session table; fastest.
      2. job-range: [Veeam.Backup.Core.CBackupSession]::GetByJobAndTimeRangeWithLog(jobId, from),
         or GetByJob(jobId), once per backup job (jobs from CBackupJob::GetAll() or Get-VBRJob).
         Indexed by (job_id, creation_time).
      3. cmdlet: Get-VBRBackupSession filtered on CreationTime. Supported but reads the whole
         session table on every call (hours, or SQL timeouts, on servers with large histories).
    Paths 1 and 2 use Veeam's internal, undocumented .NET API; each method is probed by
    reflection first, so a VBR build that renames one falls back to the next path.
    The internal queries get a window widened by a day on each side (they may compare server
    local time); the exact [From, To) filter is applied here, in UTC.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [datetime] $From,

    [Parameter(Mandatory = $true)]
    [datetime] $To,

    [string[]] $JobName,

    [string] $JobNameBase64
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
$WarningPreference = 'SilentlyContinue'    # Veeam cmdlets warn on stdout-bound streams
$ProgressPreference = 'SilentlyContinue'
$InformationPreference = 'SilentlyContinue'

# Job types whose sessions write backups (names of Veeam.Backup.Model.EDbJobType). Names that
# a VBR version does not define are ignored. Sessions of other job types are not collected.
$BackupJobTypes = @(
    'Backup', 'BackupSync', 'SimpleBackupCopyPolicy', 'SimpleBackupCopyWorker',
    'EndpointBackup', 'EpAgentBackup', 'EpAgentPolicy', 'NasBackup', 'NasBackupCopy'
)
$RunningStates = @('Starting', 'Working', 'Stopping', 'Pausing', 'Resuming', 'Postprocessing',
    'WaitingTape', 'WaitingSlot', 'WaitingRepository', 'Idle')
$Algorithms = @('Full', 'Increment', 'Synthetic')
$Results = @('Success', 'Warning', 'Failed')

function Write-Diagnostic {
    # stderr only: under powershell.exe -File, Write-Host and Write-Warning end up on stdout.
    param([string] $Message)
    [Console]::Error.WriteLine('get_efficiency_data: ' + $Message)
}

function Get-ErrorText {
    # The innermost exception says what went wrong (reflection wraps it in TargetInvocationException).
    param($ErrorRecord)
    $exception = $ErrorRecord.Exception
    while ($null -ne $exception.InnerException) { $exception = $exception.InnerException }
    $where = ''
    if ($null -ne $ErrorRecord.InvocationInfo) { $where = ' (script line {0})' -f $ErrorRecord.InvocationInfo.ScriptLineNumber }
    return ('{0}: {1}{2}' -f $exception.GetType().Name, $exception.Message, $where)
}

function Format-UtcTime {
    param([datetime] $Time)
    $culture = [System.Globalization.CultureInfo]::InvariantCulture
    return $Time.ToUniversalTime().ToString("yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fff'Z'", $culture)
}

function Get-UtcProperty {
    # CreationTime/EndTime are server local time; prefer Veeam's *UTC twin where it exists.
    param($Session, [string] $Name)
    $utc = $Session.PSObject.Properties[$Name + 'UTC']
    if ($null -ne $utc -and $utc.Value -is [datetime]) {
        return [datetime]::SpecifyKind($utc.Value, [System.DateTimeKind]::Utc)
    }
    return ([datetime] $Session.$Name).ToUniversalTime()
}

function ConvertFrom-JobNameBase64 {
    # Emits the job names; rejects anything but a JSON array of strings.
    param([string] $Encoded)
    try {
        $bytes = [System.Convert]::FromBase64String($Encoded)
        $text = (New-Object System.Text.UTF8Encoding($false, $true)).GetString($bytes)
    } catch {
        throw '-JobNameBase64 is not base64 of UTF-8 text'
    }
    if (-not $text.TrimStart().StartsWith('[')) {
        throw '-JobNameBase64 must be base64 of a JSON array of job names'
    }
    foreach ($item in (ConvertFrom-Json -InputObject $text)) {
        if ($item -isnot [string]) { throw '-JobNameBase64 must be base64 of a JSON array of strings' }
        $item
    }
}

function Import-VeeamModule {
    try {
        Import-Module -Name Veeam.Backup.PowerShell -DisableNameChecking -WarningAction SilentlyContinue -ErrorAction Stop
    } catch {
        throw ("cannot load the Veeam PowerShell module 'Veeam.Backup.PowerShell' (VBR 11 or later; " +
            'VBR 12 needs Windows PowerShell 5.1, VBR 13 PowerShell 7). Run this script on the VBR ' +
            'server with an account allowed to load the module. Cause: ' + $_.Exception.Message)
    }
    $session = Get-VBRServerSession -ErrorAction SilentlyContinue
    if ($null -eq $session) {
        Connect-VBRServer -Server localhost -ErrorAction Stop | Out-Null
    }
}

function Get-VbrVersion {
    # Get-VBRBackupServerInfo where it exists, else the file version of Veeam.Backup.Core.dll.
    try {
        if ($null -ne (Get-Command -Name Get-VBRBackupServerInfo -ErrorAction SilentlyContinue)) {
            $build = [string] (Get-VBRBackupServerInfo).Build
            if ($build) { return $build }
        }
    } catch {
        Write-Diagnostic ('Get-VBRBackupServerInfo failed: ' + $_.Exception.Message)
    }
    try {
        $coreType = 'Veeam.Backup.Core.CBackupSession' -as [type]
        if ($null -ne $coreType) {
            $file = [System.Diagnostics.FileVersionInfo]::GetVersionInfo($coreType.Assembly.Location)
            if ($file.FileVersion) { return [string] $file.FileVersion }
        }
    } catch {
        Write-Diagnostic ('cannot read the version of Veeam.Backup.Core.dll: ' + $_.Exception.Message)
    }
    return 'unknown'
}

function Get-VbrHostName {
    try {
        $name = [System.Net.Dns]::GetHostEntry('').HostName
        if ($name) { return $name }
    } catch {
        Write-Diagnostic ('DNS lookup of this host failed, using the computer name: ' + $_.Exception.Message)
    }
    if ($env:COMPUTERNAME) { return $env:COMPUTERNAME }
    return [System.Environment]::MachineName
}

function Get-BackupJobs {
    # All jobs, filtered to backup job types (and to the wanted names, if any).
    param($Wanted)
    $jobClass = 'Veeam.Backup.Core.CBackupJob' -as [type]
    $getAll = $null
    if ($null -ne $jobClass) { $getAll = $jobClass.GetMethod('GetAll', [type[]] @()) }
    if ($null -ne $getAll) {
        $jobs = $getAll.Invoke($null, $null)
    } else {
        $jobs = Get-VBRJob -WarningAction SilentlyContinue
    }
    foreach ($job in $jobs) {
        if ($BackupJobTypes -notcontains [string] $job.JobType) { continue }
        if ($Wanted.Count -gt 0 -and -not $Wanted.Contains([string] $job.Name)) { continue }
        $job
    }
}

function ConvertTo-SessionRecord {
    # One contract session. Sizes and ratios as JSON integers, is_retry as a JSON boolean.
    param($Session, [datetime] $CreationUtc, [datetime] $EndUtc)
    $name = [string] $Session.JobName
    if (-not $name) { $name = [string] $Session.Name }
    return [ordered]@{
        session_id             = [string] $Session.Id
        job_id                 = [string] $Session.JobId
        job_name               = $name
        job_type               = [string] $Session.JobType
        algorithm              = [string] $Session.Info.SessionAlgorithm
        result                 = [string] $Session.Result
        is_retry               = [bool] $Session.IsRetryMode
        creation_time          = Format-UtcTime $CreationUtc
        end_time               = Format-UtcTime $EndUtc
        data_size_bytes        = [long] $Session.BackupStats.DataSize
        backup_size_bytes      = [long] $Session.BackupStats.BackupSize
        read_size_bytes        = [long] $Session.Progress.ReadSize
        transferred_size_bytes = [long] $Session.Progress.TransferedSize
        dedup_ratio_raw        = [int] $Session.BackupStats.DedupRatio
        compress_ratio_raw     = [int] $Session.BackupStats.CompressRatio
    }
}

try {
    $windowStart = $From.ToUniversalTime()
    $windowEnd = $To.ToUniversalTime()
    if ($windowStart -ge $windowEnd) {
        throw ('-From {0} must be earlier than -To {1}' -f (Format-UtcTime $windowStart), (Format-UtcTime $windowEnd))
    }
    # Widened window for the server-side queries (they may compare local times); exact filter below.
    $queryFrom = $windowStart.ToLocalTime().AddDays(-1)
    $queryTo = $windowEnd.ToLocalTime().AddDays(1)

    $wanted = New-Object 'System.Collections.Generic.HashSet[string]' ([System.StringComparer]::OrdinalIgnoreCase)
    if ($JobName) {
        foreach ($name in $JobName) { if ($name) { [void] $wanted.Add($name) } }
    }
    if ($JobNameBase64) {
        foreach ($name in (ConvertFrom-JobNameBase64 -Encoded $JobNameBase64)) { [void] $wanted.Add($name) }
    }

    Import-VeeamModule
    $vbrVersion = Get-VbrVersion
    $vbrHost = Get-VbrHostName

    # Probe the indexed internal calls by reflection; $null where this VBR build lacks them.
    $sessionClass = 'Veeam.Backup.Core.CBackupSession' -as [type]
    $jobTypeEnum = 'Veeam.Backup.Model.EDbJobType' -as [type]
    $byTypeAndTime = $null
    $byJob = $null
    if ($null -ne $sessionClass -and $null -ne $jobTypeEnum) {
        $byTypeAndTime = $sessionClass.GetMethod('GetByTypeAndTimeInterval', [type[]] @($jobTypeEnum, [datetime], [datetime]))
    }
    if ($null -ne $sessionClass) {
        $byJob = $sessionClass.GetMethod('GetByJobAndTimeRangeWithLog', [type[]] @([guid], [datetime]))
        if ($null -eq $byJob) { $byJob = $sessionClass.GetMethod('GetByJob', [type[]] @([guid])) }
    }

    $raw = New-Object System.Collections.Generic.List[object]
    if ($null -ne $byTypeAndTime) {
        # Path 1 (fastest): indexed query per backup job type and time interval.
        $definedTypes = [System.Enum]::GetNames($jobTypeEnum)
        $types = @($BackupJobTypes | Where-Object { $definedTypes -contains $_ })
        Write-Diagnostic ('data path: CBackupSession.GetByTypeAndTimeInterval per job type (' + ($types -join ', ') + ')')
        foreach ($typeName in $types) {
            $typeValue = [System.Enum]::Parse($jobTypeEnum, $typeName)
            foreach ($s in $byTypeAndTime.Invoke($null, [object[]] @($typeValue, $queryFrom, $queryTo))) { $raw.Add($s) }
        }
    } elseif ($null -ne $byJob) {
        # Path 2: indexed query per backup job (job id, creation time).
        $jobs = @(Get-BackupJobs -Wanted $wanted)
        Write-Diagnostic ('data path: CBackupSession.{0} per job ({1} jobs)' -f $byJob.Name, $jobs.Count)
        foreach ($job in $jobs) {
            if ($byJob.Name -eq 'GetByJob') { $arguments = [object[]] @($job.Id) }
            else { $arguments = [object[]] @($job.Id, $queryFrom) }
            foreach ($s in $byJob.Invoke($null, $arguments)) { $raw.Add($s) }
        }
    } else {
        # Path 3 (fallback, slow): the supported cmdlet reads the whole session table.
        Write-Diagnostic 'data path: Get-VBRBackupSession filtered on CreationTime (slow: reads every session)'
        Get-VBRBackupSession | Where-Object { $_.CreationTime -ge $queryFrom -and $_.CreationTime -lt $queryTo } |
            ForEach-Object { $raw.Add($_) }
    }

    $skipped = @{ running = 0; outside_window = 0; other_job_type = 0; other_job = 0; duplicate = 0; other_result = 0; other_algorithm = 0 }
    $seen = New-Object 'System.Collections.Generic.HashSet[string]'
    $sessions = New-Object System.Collections.Generic.List[object]
    foreach ($s in $raw) {
        if (-not $seen.Add([string] $s.Id)) { $skipped['duplicate'] += 1; continue }
        if ($RunningStates -contains [string] $s.State -or ([datetime] $s.EndTime).Year -le 1900) {
            $skipped['running'] += 1; continue
        }
        $creationUtc = Get-UtcProperty -Session $s -Name 'CreationTime'
        if ($creationUtc -lt $windowStart -or $creationUtc -ge $windowEnd) { $skipped['outside_window'] += 1; continue }
        if ($BackupJobTypes -notcontains [string] $s.JobType) { $skipped['other_job_type'] += 1; continue }
        if ($wanted.Count -gt 0 -and -not $wanted.Contains([string] $s.JobName)) { $skipped['other_job'] += 1; continue }
        if ($Results -notcontains [string] $s.Result) { $skipped['other_result'] += 1; continue }
        if ($Algorithms -notcontains [string] $s.Info.SessionAlgorithm) { $skipped['other_algorithm'] += 1; continue }
        try {
            $endUtc = Get-UtcProperty -Session $s -Name 'EndTime'
            $sessions.Add((ConvertTo-SessionRecord -Session $s -CreationUtc $creationUtc -EndUtc $endUtc))
        } catch {
            throw ('cannot read session {0} of job {1}: {2}' -f $s.Id, $s.JobId, $_.Exception.Message)
        }
    }
    $skipText = ($skipped.Keys | Sort-Object | ForEach-Object { '{0}={1}' -f $_, $skipped[$_] }) -join ', '
    Write-Diagnostic ('{0} sessions read, {1} emitted; skipped: {2}' -f $raw.Count, $sessions.Count, $skipText)

    $document = [ordered]@{
        schema_version = 1
        vbr_host       = [string] $vbrHost
        vbr_version    = [string] $vbrVersion
        collected_at   = Format-UtcTime ([datetime]::UtcNow)
        window_start   = Format-UtcTime $windowStart
        window_end     = Format-UtcTime $windowEnd
        sessions       = $sessions.ToArray()    # a plain object[]: stays a JSON array with 0 or 1 items
    }
    $json = ConvertTo-Json -InputObject $document -Depth 6 -Compress

    # UTF-8 without BOM, written as bytes so neither host nor $OutputEncoding can add one.
    $utf8 = New-Object System.Text.UTF8Encoding($false)
    try { [Console]::OutputEncoding = $utf8 } catch { Write-Diagnostic 'cannot set the console output encoding' }
    $bytes = $utf8.GetBytes($json + "`n")
    $stdout = [Console]::OpenStandardOutput()
    $stdout.Write($bytes, 0, $bytes.Length)
    $stdout.Flush()
} catch {
    [Console]::Error.WriteLine('get_efficiency_data: ERROR: ' + (Get-ErrorText $_))
    exit 1
}
exit 0
